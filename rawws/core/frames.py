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
from collections.abc import Generator

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
    MessageDecoder,
    Opcode,
    ParseFailed,
    XorMaskerSimple,
)

from rawws.core.budget import ReadBudget
from rawws.core.extensions import PerMessageDeflate
from rawws.core.masking import FAST_MASKING, Unmasker

_CONTINUATION, _TEXT = Opcode.CONTINUATION, Opcode.TEXT

CONTROL_BIT = 0x08  # opcodes 0x8–0xF are control frames
FIN_BIT = 0x80
_LENGTH_16 = struct.Struct("!BBH")
_LENGTH_64 = struct.Struct("!BBQ")


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

    @property
    def backlog_bytes(self) -> int:
        """Compressed bytes taken off the wire that the inflater has not consumed yet."""
        deflate = self._deflate
        return 0 if deflate is None else deflate.backlog_bytes

    def process_buffer(self) -> Frame | None:
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
        if not super().parse_header():
            return False
        if FAST_MASKING and type(self.masker) is XorMaskerSimple:
            self.masker = Unmasker(self.masker._masking_key)  # type: ignore[assignment]  # same process() interface
        limit = self.max_message_bytes
        header = self.header
        if limit is not None and header is not None and not header.opcode & CONTROL_BIT:
            if header.opcode:  # TEXT or BINARY: a new message (CONTINUATION is 0)
                self._message_bytes = 0
                self._compressed_message = header.rsv.rsv1
            if not self._compressed_message:
                self._message_bytes += header.payload_len
                if self._message_bytes > limit:
                    raise ParseFailed(
                        f"message over {limit} bytes", CloseReason.MESSAGE_TOO_BIG
                    )
        return True


class AssemblingMessageDecoder(MessageDecoder):
    """wsproto's message decoder, but a text message in pieces stays bytes (checked as it comes).

    A text message whose first frame is whole is decoded at once, as wsproto
    does: that is the common case and costs one decode. Otherwise every piece
    is checked with an incremental UTF-8 decoder whose output is dropped, and
    the piece goes on as bytes; ``rawws.core.protocol`` decodes the whole once.
    ``payload_bytes`` is the size of the last piece's payload, for the budget.
    """

    def __init__(self) -> None:
        super().__init__()
        self.payload_bytes = 0

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
        self.payload_bytes = len(payload)
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
        self._message_decoder = self._messages = AssemblingMessageDecoder()
        #: What each step costs is drawn from this (``None``: no budget, the client's default).
        self.budget: ReadBudget | None = None

    def received_frames(self) -> Generator[Frame, None, None]:
        """wsproto's, but each step is paid for and none is taken while the budget is overdrawn."""
        budget = self.budget
        if budget is None:
            yield from super().received_frames()
            return
        parse = self._parse_more
        messages = self._messages
        while not budget.exhausted:
            frame = next(parse, None)
            if frame is None:
                return
            if frame.opcode & CONTROL_BIT:
                budget.spend(1, 0)  # at most 125 bytes: the frame is the cost
            else:
                budget.spend(1 if frame.frame_finished else 0, messages.payload_bytes)
            yield frame

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
        first = FIN_BIT | opcode if fin else int(opcode)
        length = len(payload)
        if length <= MAX_PAYLOAD_NORMAL:
            return bytes((first, length)) + payload
        if opcode & CONTROL_BIT:
            raise ValueError("payload too long for control frame")
        if length <= MAX_PAYLOAD_TWO_BYTE:
            return _LENGTH_16.pack(first, PAYLOAD_LENGTH_TWO_BYTE, length) + payload
        return _LENGTH_64.pack(first, PAYLOAD_LENGTH_EIGHT_BYTE, length) + payload
