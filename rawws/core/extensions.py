"""The wsproto extension rawws runs: permessage-deflate (RFC 7692), with two gaps closed.

wsproto leaves two gaps that these classes close:

* Its ``PerMessageDeflate`` forgets that a message is compressed when a control
  frame (a ping) arrives between the fragments of that message, so the next
  fragment is not inflated (RFC 6455 §5.4 allows control frames there).
* It enforces no size limit, not even on inflated data, so a small compressed
  frame can expand to gigabytes. We inflate with a bounded output size; the
  limit on uncompressed messages is checked on frame headers (``rawws.core.frames``).
* It inflates whatever a read brought in one call, so a kilobyte on the wire
  can cost a megabyte of work before anything can stop it. We inflate at most
  ``INFLATE_SLICE_BYTES`` per call; what zlib has not consumed yet stays here
  (``backlogged``) and the frame decoder (``rawws.core.frames``) takes it a
  slice per step, each step paid from the connection's budget first.
"""

from __future__ import annotations

import zlib

from wsproto.extensions import PerMessageDeflate as _WsprotoPerMessageDeflate
from wsproto.frame_protocol import (
    CloseReason,
    FrameDecoder,
    FrameProtocol,
    Opcode,
    RsvBits,
)

from rawws.core.deflate import (
    DEFAULT_LEVEL,
    DEFAULT_MEMORY_LEVEL,
    DEFLATE_TRAILER,
    deflate_message,
)

NO_RSV = RsvBits(False, False, False)
ZLIB_MIN_WINDOW_BITS = (
    9  # zlib refuses raw deflate with 8; RFC 7692 lets a server decline it
)
ZLIB_MAX_WINDOW_BITS = 15
#: The most one inflate call produces: about 0.2 ms of work, the unit the budget is checked in.
INFLATE_SLICE_BYTES = 64 * 1024


class PerMessageDeflate(_WsprotoPerMessageDeflate):
    """wsproto's permessage-deflate with control frames kept out of message state and bounded inflation.

    ``shared``: the server negotiated ``server_no_context_takeover``, so each whole
    message it sends is compressed by the per-thread shared compressor
    (``rawws.core.deflate``) and this connection never holds a compressor.
    Otherwise the connection's own compressor uses ``memory_level`` (zlib's
    default 8 costs 128 KiB of hash per context; 5 costs 16 KiB).
    """

    def __init__(
        self,
        *,
        max_message_bytes: int | None = None,
        shared: bool = False,
        memory_level: int = DEFAULT_MEMORY_LEVEL,
        **params: object,
    ) -> None:
        super().__init__(**params)  # type: ignore[arg-type]  # wsproto 1.3 (pinned in uv.lock) types each keyword; we pass them through
        self.max_message_bytes = max_message_bytes
        self.shared = shared
        self.memory_level = memory_level
        self._in_control_frame = False
        self._inflated_bytes = 0
        #: Compressed input of the current frame that zlib has not consumed yet (a slice stopped it).
        self._backlog = b""

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        if opcode.iscontrol():
            # A control frame may sit between the fragments of a compressed
            # message; it must not touch that message's inflate state.
            if rsv.rsv1:
                return CloseReason.PROTOCOL_ERROR
            self._in_control_frame = True
            return NO_RSV
        self._in_control_frame = False
        if opcode is not Opcode.CONTINUATION:
            self._inflated_bytes = 0
        return super().frame_inbound_header(proto, opcode, rsv, payload_length)

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if self._in_control_frame or not self._inbound_compressed:
            return data
        return self._inflate(data)

    @property
    def backlog_bytes(self) -> int:
        return len(self._backlog)

    def backlogged(self) -> bool:
        """Input is left from the last slice: the frame decoder takes it (``inflate_backlog``) before anything else."""
        return bool(self._backlog)

    def inflate_backlog(
        self, proto: FrameDecoder | FrameProtocol
    ) -> bytes | CloseReason:
        """The next slice of what an earlier slice left over."""
        data, self._backlog = self._backlog, b""
        return self._inflate(data)

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if self._in_control_frame or not fin or self._backlog:
            # Not the message's end; or its inflation is not done: the frame decoder calls again once it is.
            return None
        if not self._inbound_compressed:
            self._inbound_compressed = None
            return None
        tail = self._inflate(DEFLATE_TRAILER, whole=True)
        if isinstance(tail, CloseReason):
            return tail
        no_context_takeover = (
            self.server_no_context_takeover
            if proto.client
            else self.client_no_context_takeover
        )
        if no_context_takeover:
            self._decompressor = None
        self._inbound_compressed = None
        return tail

    def frame_outbound(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        data: bytes,
        fin: bool,
    ) -> tuple[RsvBits, bytes]:
        whole_message = fin and (opcode is Opcode.TEXT or opcode is Opcode.BINARY)
        if (
            self.shared
            and whole_message
            and self._compressor is None
            and self._no_outbound_context(proto)
        ):
            # The shared compressor's memory level, not this connection's: its frames must be the
            # very bytes a ``SharedFrame`` gives every receiver with the same window.
            return RsvBits(True, rsv.rsv2, rsv.rsv3), deflate_message(
                data, self._outbound_bits(proto)
            )
        if (
            self._compressor is None
            and self._compressible_opcode(opcode)
            and opcode is not Opcode.CONTINUATION
        ):
            # wsproto's own would use memory level 8; the bounded one is set up here instead.
            self._compressor = zlib.compressobj(
                DEFAULT_LEVEL,
                zlib.DEFLATED,
                -self._outbound_bits(proto),
                self.memory_level,
            )
        return super().frame_outbound(proto, opcode, rsv, data, fin)

    def _outbound_bits(self, proto: FrameDecoder | FrameProtocol) -> int:
        return (
            self.client_max_window_bits if proto.client else self.server_max_window_bits
        )

    def _no_outbound_context(self, proto: FrameDecoder | FrameProtocol) -> bool:
        return (
            self.client_no_context_takeover
            if proto.client
            else self.server_no_context_takeover
        )

    @property
    def shared_window_bits(self) -> int | None:
        """The window size of the shared compressed frames this (server) connection can send, or ``None``."""
        if self.shared and self.server_no_context_takeover:
            return self.server_max_window_bits
        return None

    def _inflate(self, data: bytes, *, whole: bool = False) -> bytes | CloseReason:
        """Inflate at most a slice of ``data`` (what is left waits in ``_backlog``), never past the message limit.

        ``whole``: the message's trailer, which ends it: all of it is inflated (within the limit).
        """
        decompressor = self._decompressor
        assert decompressor is not None
        limit = self.max_message_bytes
        room = None if limit is None else limit - self._inflated_bytes
        if whole:
            most = 0 if room is None else room + 1  # 0 means "unbounded"
        else:
            most = (
                INFLATE_SLICE_BYTES
                if room is None
                else min(INFLATE_SLICE_BYTES, room + 1)
            )
        try:
            output = decompressor.decompress(data, most)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated_bytes += len(output)
        if room is not None and len(output) > room:
            return CloseReason.MESSAGE_TOO_BIG
        left = decompressor.unconsumed_tail
        if left:
            if whole:
                return CloseReason.MESSAGE_TOO_BIG
            self._backlog = left  # the slice is full: the rest waits for the next step
        return output
