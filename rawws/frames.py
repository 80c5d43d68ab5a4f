"""wsproto's frame engine, fitted for a busy server: C unmasking, and the message limit on frame headers.

wsproto parses and builds every frame; these subclasses change two things
around its ``FrameDecoder``, both visible only as speed:

* the payload of a masked frame is unmasked by ``rawws.masking.Unmasker`` (C)
  instead of wsproto's pure-Python masker;
* the message-size limit is checked on each data frame's header, where the
  declared length is known before any of the payload is buffered, and summed
  over a fragmented message. Running it as a wsproto ``Extension`` cost two
  payload copies and three calls per frame. A compressed message's wire
  length says nothing about its size: ``PerMessageDeflate`` bounds its
  inflated bytes instead.
"""

from __future__ import annotations

from wsproto.extensions import Extension
from wsproto.frame_protocol import (
    CloseReason,
    FrameDecoder,
    FrameProtocol,
    ParseFailed,
    XorMaskerSimple,
)

from rawws.masking import FAST_MASKING, Unmasker

CONTROL_BIT = 0x08  # opcodes 0x8–0xF are control frames


class LimitedFrameDecoder(FrameDecoder):
    """wsproto's decoder with the size limit enforced on headers and the C unmasker swapped in."""

    def __init__(self, client: bool, extensions: list[Extension], max_message_bytes: int | None) -> None:
        super().__init__(client, extensions)
        self.max_message_bytes = max_message_bytes
        self._message_bytes = 0
        self._compressed_message = False

    def parse_header(self) -> bool:
        if not super().parse_header():
            return False
        if FAST_MASKING and type(self.masker) is XorMaskerSimple:
            self.masker = Unmasker(self.masker._masking_key)
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

    def __init__(self, client: bool, extensions: list[Extension], max_message_bytes: int | None = None) -> None:
        super().__init__(client, extensions)
        # The parsing generator has not started yet, so it will read from this decoder.
        self._frame_decoder = LimitedFrameDecoder(client, self.extensions, max_message_bytes)
