"""wsproto's frame engine, fitted for a busy server: C unmasking, limits paid before the work, fewer copies.

wsproto parses and builds every frame; these subclasses change five things,
visible only as speed and bounded cost (tests/core/test_frames.py checks them
against wsproto's own classes, message for message and failure for failure):

* the payload of a masked frame is unmasked by ``rawws.masking.Unmasker`` (C)
  instead of wsproto's pure-Python masker;
* the message-size limit is checked on each data frame's header, where the
  declared length is known before any of the payload is buffered, and summed
  over a fragmented message. Running it as a wsproto ``Extension`` cost two
  payload copies and three calls per frame. A compressed message's wire
  length says nothing about its size: ``PerMessageDeflate`` bounds its
  inflated bytes instead;
* an unmasked frame that no extension touches (every server frame on a
  connection without compression) is built as header + payload: one copy of
  the payload where wsproto's generic path makes three, and no extension
  plumbing. Everything else (masked client frames, compressed messages) goes
  through wsproto's ``_serialize_frame`` unchanged;
* a compressed payload is inflated in slices (``rawws.core.extensions``): when
  the inflater stops at a slice with input left over, the frame goes on from
  that backlog, one slice per step, before anything else is parsed, so no step
  costs more than a slice whatever the wire bytes expand to; and every step is
  paid from the connection's ``ReadBudget`` (``rawws.core.budget``) before the
  next one is taken;
* a text message in several pieces is checked as UTF-8 piece by piece (so a bad
  byte still fails at once, as RFC 6455 §8.1 asks) but handed on as *bytes*, to
  be decoded once when it is whole (``rawws.core.protocol``): what a partial
  message holds is its UTF-8 bytes, bounded by the message limit, never a ``str``
  four bytes wide because of one astral character.
"""

from __future__ import annotations

import struct
from codecs import getincrementaldecoder
from collections.abc import Iterator

from wsproto.extensions import Extension
from wsproto.frame_protocol import (
    MAX_PAYLOAD_NORMAL,
    MAX_PAYLOAD_TWO_BYTE,
    PAYLOAD_LENGTH_EIGHT_BYTE,
    PAYLOAD_LENGTH_TWO_BYTE,
    CloseReason,
    Frame,
    FrameDecoder,
    FrameProtocol,
    Header,
    MessageDecoder,
    Opcode,
    ParseFailed,
    XorMaskerSimple,
)

from rawws.core.budget import ReadBudget
from rawws.core.extensions import PerMessageDeflate
from rawws.core.masking import FAST_MASKING, Unmasker

_CONTINUATION, _TEXT = Opcode.CONTINUATION, Opcode.TEXT
_parse_header = FrameDecoder.parse_header  # wsproto's, called once per frame

CONTROL_BIT = 0x08  # opcodes 0x8–0xF are control frames
FIN_BIT = 0x80
_LENGTH_16 = struct.Struct("!BBH")
_LENGTH_64 = struct.Struct("!BBQ")
#: The two header bytes of every final frame of up to 125 bytes, by opcode and length.
_SHORT_FIN_HEADERS = [
    [bytes((FIN_BIT | opcode, length)) for length in range(MAX_PAYLOAD_NORMAL + 1)]
    for opcode in range(16)
]


class LimitedFrameDecoder(FrameDecoder):
    """wsproto's decoder with the size limit enforced on headers and the C unmasker swapped in."""

    def __init__(
        self, client: bool, extensions: list[Extension], max_message_bytes: int | None
    ) -> None:
        super().__init__(client, extensions)
        self.max_message_bytes = max_message_bytes
        self._message_bytes = 0
        self._compressed_message = False
        self._deflate = next(
            (ext for ext in extensions if isinstance(ext, PerMessageDeflate)), None
        )
        #: A frame whose wire bytes are all taken while its inflation is not done: its ``fin``.
        self._frame_end_deferred: bool | None = None
        self._budget: ReadBudget | None = None
        self._overdrawn = False
        self.budget = None

    @property
    def budget(self) -> ReadBudget | None:
        """What each step costs is drawn from this (``None``: no budget, the client's default)."""
        return self._budget

    @budget.setter
    def budget(self, budget: ReadBudget | None) -> None:
        self._budget = budget
        self._overdrawn = budget is not None and budget.exhausted
        # The step wsproto's parsing generator calls once per frame is chosen by class, so
        # that no call is added in between (without an inflater and a budget it is wsproto's
        # own), and so that the decoder holds no bound method of itself: such a cycle would
        # leave every closed connection's decoder to the collector's full pass.
        self.__class__ = _DECODERS[self._deflate is not None, budget is not None]

    #: The step without the budget: wsproto's, or ``_step`` with an inflater (set by class).
    _unpaid_step = FrameDecoder.process_buffer

    @property
    def backlog_bytes(self) -> int:
        """Compressed bytes taken off the wire that the inflater has not consumed yet."""
        deflate = self._deflate
        return 0 if deflate is None else deflate.backlog_bytes

    def _paid_step(self) -> Frame | None:
        """One step, paid from the budget; none is taken while it is overdrawn (``None``: nothing more now).

        A data frame costs one frame when its last bytes are parsed and, when its
        message is compressed, the bytes it inflated to; a control frame (at most
        125 bytes) costs one frame. A plain payload costs no bytes: the peer sent
        every one of them, and what one read holds is bounded by the transport, so
        only inflation multiplies what a peer's bytes cost. Only this step spends
        the budget, so it is asked again only once a charge overdrew it.
        """
        budget = self._budget
        assert budget is not None
        if self._overdrawn:
            if budget.exhausted:
                return None
            self._overdrawn = False  # refilled since
        frame = self._unpaid_step()
        if frame is not None:
            if frame.opcode & CONTROL_BIT:
                self._overdrawn = budget.charge(1, 0)
            else:
                self._overdrawn = budget.charge(
                    1 if frame.frame_finished else 0,
                    len(frame.payload) if self._compressed_message else 0,
                )
        return frame

    def _step(self) -> Frame | None:
        """wsproto's step, or one more slice of a payload the inflater stopped in the middle of."""
        deflate = self._deflate
        if deflate is None:
            return super().process_buffer()
        if deflate.backlogged():
            return self._next_slice(deflate)
        frame = super().process_buffer()
        if frame is not None and frame.frame_finished and deflate.backlogged():
            # wsproto took the frame's last bytes, and ended it (its inflater's end was put off,
            # ``PerMessageDeflate.frame_inbound_complete``): the frame goes on from the backlog.
            self._frame_end_deferred = frame.message_finished
            return Frame(frame.opcode, frame.payload, False, frame.message_finished)
        return frame

    def _next_slice(self, deflate: PerMessageDeflate) -> Frame:
        payload = deflate.inflate_backlog(self)
        if isinstance(payload, CloseReason):
            raise ParseFailed("error in extension", payload)
        fin = self._frame_end_deferred
        if fin is None or deflate.backlogged():
            # More of the frame's wire bytes may follow (or more slices): not its end yet.
            header = self.header
            ends_message = fin if fin is not None else header is not None and header.fin
            return Frame(_CONTINUATION, payload, False, ends_message)
        self._frame_end_deferred = None
        tail = deflate.frame_inbound_complete(self, fin)
        if isinstance(tail, CloseReason):
            raise ParseFailed("error in extension", tail)
        return Frame(_CONTINUATION, payload + tail if tail else payload, True, fin)

    def parse_header(self) -> bool:
        if not _parse_header(self):
            return False
        masker = self.masker
        if type(masker) is XorMaskerSimple and FAST_MASKING:
            self.masker = Unmasker(masker._masking_key)  # type: ignore[assignment]  # same process() interface
        header: Header = self.header  # type: ignore[assignment]  # set by a header that parsed
        opcode = header.opcode
        if not opcode & CONTROL_BIT:
            if opcode:  # TEXT or BINARY: a new message (CONTINUATION is 0)
                self._message_bytes = 0
                self._compressed_message = header.rsv.rsv1
            limit = self.max_message_bytes
            if limit is not None and not self._compressed_message:
                self._message_bytes += header.payload_len
                if self._message_bytes > limit:
                    raise ParseFailed(
                        f"message over {limit} bytes", CloseReason.MESSAGE_TOO_BIG
                    )
        return True


class _PaidDecoder(LimitedFrameDecoder):
    """No inflater, a budget: each of wsproto's steps is paid."""

    process_buffer = LimitedFrameDecoder._paid_step


class _InflatingDecoder(LimitedFrameDecoder):
    """An inflater, no budget (a client's): wsproto's step or a slice of the backlog."""

    process_buffer = LimitedFrameDecoder._step
    _unpaid_step = LimitedFrameDecoder._step


class _PaidInflatingDecoder(LimitedFrameDecoder):
    """An inflater and a budget: each step or slice is paid."""

    process_buffer = LimitedFrameDecoder._paid_step
    _unpaid_step = LimitedFrameDecoder._step


#: (has an inflater, has a budget) → the class whose ``process_buffer`` is the step to take.
_DECODERS: dict[tuple[bool, bool], type[LimitedFrameDecoder]] = {
    (False, False): LimitedFrameDecoder,
    (False, True): _PaidDecoder,
    (True, False): _InflatingDecoder,
    (True, True): _PaidInflatingDecoder,
}


class AssemblingMessageDecoder(MessageDecoder):
    """wsproto's message decoder, but a text message in pieces stays bytes (checked as it comes).

    A text message whose first frame is whole is decoded at once, as wsproto
    does: that is the common case and costs one decode. Otherwise every piece
    is checked with an incremental UTF-8 decoder whose output is dropped, and
    the piece goes on as bytes; ``rawws.core.protocol`` decodes the whole once.
    """

    def process_frame(self, frame: Frame) -> Frame:
        opcode = frame.opcode
        if self.opcode is None:
            if opcode is _CONTINUATION:
                raise ParseFailed("unexpected CONTINUATION")
            self.opcode = opcode
        elif opcode is not _CONTINUATION:
            raise ParseFailed(f"expected CONTINUATION, got {opcode!r}")
        message_opcode = self.opcode
        payload: bytes = frame.payload  # type: ignore[assignment]  # data frames carry bytes from the frame decoder
        finished = frame.frame_finished and frame.message_finished
        data: str | bytes = payload
        if message_opcode is _TEXT:
            try:
                if finished and self.decoder is None:
                    data = payload.decode("utf-8")  # whole in one piece
                else:
                    if self.decoder is None:
                        self.decoder = getincrementaldecoder("utf-8")()
                    self.decoder.decode(payload, finished)  # checked; the bytes go on
            except UnicodeDecodeError as exc:
                raise ParseFailed(
                    str(exc), CloseReason.INVALID_FRAME_PAYLOAD_DATA
                ) from None
        if finished:
            self.opcode = None
            self.decoder = None
        return Frame(message_opcode, data, frame.frame_finished, finished)


class TunedFrameProtocol(FrameProtocol):
    """wsproto's ``FrameProtocol`` reading through ``LimitedFrameDecoder``, each step paid from ``budget``."""

    def __init__(
        self,
        client: bool,
        extensions: list[Extension],
        max_message_bytes: int | None = None,
    ) -> None:
        super().__init__(client, extensions)
        # The parsing generator has not started yet, so it will read from this decoder.
        self._frame_decoder = self._decoder = LimitedFrameDecoder(
            client, self.extensions, max_message_bytes
        )
        self._message_decoder = AssemblingMessageDecoder()

    @property
    def budget(self) -> ReadBudget | None:
        """What each step costs is drawn from this (``None``: no budget, the client's default).

        The decoder pays each step before it is handed on and, once the budget is
        overdrawn, parses nothing more: to wsproto that is a decoder waiting for bytes.
        """
        return self._decoder.budget

    @budget.setter
    def budget(self, budget: ReadBudget | None) -> None:
        self._decoder.budget = budget

    def received_frames(self) -> Iterator[Frame]:  # type: ignore[override]  # iterated only
        """wsproto's frames until it needs more bytes (or the budget is overdrawn).

        wsproto's own is a generator over its parsing generator, stopping at its
        ``None``; ``iter(next, None)`` does the same in C, one Python frame less per frame.
        """
        return iter(self._parse_more.__next__, None)

    def release(self) -> None:
        """Nothing more will be parsed: end wsproto's parsing generator.

        The generator holds this protocol and this protocol holds it, a cycle only
        the collector's full pass would free; a close frame ends it by itself, and
        this ends it for a connection that stopped without one (TCP gone, aborted).
        """
        self._parse_more.close()

    @property
    def unparsed_bytes(self) -> int:
        """Bytes received and not yet parsed into a frame (wsproto commits each frame's bytes as it parses it),
        and compressed bytes a slice left for the next step."""
        return len(self._decoder.buffer) + self._decoder.backlog_bytes

    def _serialize_frame(  # type: ignore[override]  # wsproto only sends the result on: bytes do as well
        self, opcode: Opcode, payload: bytes | bytearray = b"", fin: bool = True
    ) -> bytearray | bytes:
        if self.client or self.extensions:
            return super()._serialize_frame(opcode, payload, fin)
        # RFC 6455 §5.2: FIN and opcode, then the length in 7 bits, or 126 + 16 bits, or 127 + 64 bits.
        length = len(payload)
        if length <= MAX_PAYLOAD_NORMAL:
            if fin:
                return _SHORT_FIN_HEADERS[opcode][length] + payload
            return bytes((opcode, length)) + payload
        first = FIN_BIT | opcode if fin else int(opcode)
        if opcode & CONTROL_BIT:
            raise ValueError("payload too long for control frame")
        if length <= MAX_PAYLOAD_TWO_BYTE:
            return _LENGTH_16.pack(first, PAYLOAD_LENGTH_TWO_BYTE, length) + payload
        return _LENGTH_64.pack(first, PAYLOAD_LENGTH_EIGHT_BYTE, length) + payload
