"""wsproto's frame engine, fitted for a busy server: C unmasking, the message limit on headers, fewer copies.

wsproto parses and builds every frame; these subclasses change three things,
all visible only as speed (tests/core/test_frames.py checks them byte for byte
against wsproto's own classes):

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
  through wsproto's ``_serialize_frame`` unchanged.
"""

from __future__ import annotations

import struct

from wsproto.extensions import Extension
from wsproto.frame_protocol import (
    MAX_PAYLOAD_NORMAL,
    MAX_PAYLOAD_TWO_BYTE,
    PAYLOAD_LENGTH_EIGHT_BYTE,
    PAYLOAD_LENGTH_TWO_BYTE,
    CloseReason,
    FrameDecoder,
    FrameProtocol,
    Opcode,
    ParseFailed,
    XorMaskerSimple,
)

from rawws.core.masking import FAST_MASKING, Unmasker

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


class TunedFrameProtocol(FrameProtocol):
    """wsproto's ``FrameProtocol`` reading through ``LimitedFrameDecoder``."""

    def __init__(
        self,
        client: bool,
        extensions: list[Extension],
        max_message_bytes: int | None = None,
    ) -> None:
        super().__init__(client, extensions)
        # The parsing generator has not started yet, so it will read from this decoder.
        self._frame_decoder = LimitedFrameDecoder(
            client, self.extensions, max_message_bytes
        )

    @property
    def unparsed_bytes(self) -> int:
        """Bytes received and not yet parsed into a frame (wsproto commits each frame's bytes as it parses it)."""
        return len(self._frame_decoder.buffer)

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
