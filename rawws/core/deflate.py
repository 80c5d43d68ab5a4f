"""permessage-deflate done once per message: the shared compressor and the frame many receivers share.

RFC 7692 lets a server negotiate ``server_no_context_takeover``: each message
it sends is then compressed as if no message came before. Two things follow.

* No connection needs a compressor of its own. One compressor per window size
  (and thread) serves every connection: after each message it is flushed with
  ``Z_FULL_FLUSH``, which ends the output on a byte boundary with the same
  ``00 00 ff ff`` tail as the ``Z_SYNC_FLUSH`` the RFC describes *and* forgets
  the history, so the next message's bytes stand alone. An idle connection
  holds no zlib state at all, and no message pays for a compressor's
  allocation (about 256 KiB at window 15, memory level 8).
* Two connections with the same window size would send a message as the very
  same bytes (the memory level is the server's own choice, the same for all:
  ``DEFAULT_MEMORY_LEVEL``; ``RAWWS_COMPRESSION_MEMORY_LEVEL`` is for dedicated contexts). ``SharedFrame`` is the uncompressed frame of one fanned-out
  message that also builds, on first use, its compressed frame per window
  size, so a room of compressed members costs one deflate per message, not
  one per member.

The inflating side (``client_no_context_takeover``, which a server may ask for
even when the client did not offer it, RFC 7692 §7.1.1.2) creates a
decompressor when a compressed message starts and drops it when it ends.
"""

from __future__ import annotations

import threading
import zlib

from wsproto.frame_protocol import Opcode

DEFLATE_TRAILER = b"\x00\x00\xff\xff"  # RFC 7692 §7.2.1: removed by the sender, added back by the receiver

SHARED = "shared"  # no context takeover either way; one compressor per window size, one deflate per fan-out
DEDICATED = "dedicated"  # each connection keeps its own compression context (better ratio, memory per connection)
OFF = "off"  # permessage-deflate is declined
COMPRESSION_MODES = (SHARED, DEDICATED, OFF)

#: The bounds a server picks from, as websockets does: 12 window bits and memory level 5 cost
#: about 4 KiB + 8 KiB of window and hash per context instead of 32 KiB + 128 KiB at zlib's defaults.
DEFAULT_WINDOW_BITS = 12
DEFAULT_MEMORY_LEVEL = 5
DEFAULT_LEVEL = 6  # zlib's default level; chat JSON gains little from more
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no"}


def compression_mode(value: str | bool) -> str:
    """Normalise a compression setting: one of ``COMPRESSION_MODES`` (``True``/``False`` mean shared/off)."""
    if value is True:
        return SHARED
    if value is False:
        return OFF
    lowered = value.strip().lower()
    if lowered in COMPRESSION_MODES:
        return lowered
    if lowered in _TRUE:
        return SHARED
    if lowered in _FALSE:
        return OFF
    raise ValueError(
        f"compression must be one of {', '.join(COMPRESSION_MODES)}, not {value!r}"
    )


class _Compressors(threading.local):
    """One compressor per (window bits, memory level, level) and thread: a flush must follow its own input."""

    def __init__(self) -> None:
        self.by_params: dict[tuple[int, int, int], zlib._Compress] = {}


_compressors = _Compressors()


def deflate_message(
    data: bytes,
    window_bits: int,
    memory_level: int = DEFAULT_MEMORY_LEVEL,
    level: int = DEFAULT_LEVEL,
) -> bytes:
    """``data`` compressed as one message with no context takeover (RFC 7692 §7.2.1), tail removed."""
    key = (window_bits, memory_level, level)
    compressor = _compressors.by_params.get(key)
    if compressor is None:
        compressor = _compressors.by_params[key] = zlib.compressobj(
            level, zlib.DEFLATED, -window_bits, memory_level
        )
    output = compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)
    if output.endswith(DEFLATE_TRAILER):
        return output[:-4]
    # Nothing to flush (an empty message right after another): an empty payload inflates to b"".
    return output


def frame_header(first_byte: int, length: int) -> bytes:
    """An unmasked server frame header (RFC 6455 §5.2) for a payload of ``length`` bytes."""
    if length <= 125:
        return bytes((first_byte, length))
    if length <= 0xFFFF:
        return bytes((first_byte, 126)) + length.to_bytes(2, "big")
    return bytes((first_byte, 127)) + length.to_bytes(8, "big")


_FIN_RSV1_TEXT = 0x80 | 0x40 | Opcode.TEXT
_FIN_RSV1_BINARY = 0x80 | 0x40 | Opcode.BINARY


def deflated_text_frame(
    text: str, window_bits: int, memory_level: int = DEFAULT_MEMORY_LEVEL
) -> bytes:
    """The compressed server frame of ``text``: what ``PerMessageDeflate`` in shared mode sends for it."""
    return deflated_frame(text, window_bits, memory_level)


def deflated_frame(
    message: str | bytes, window_bits: int, memory_level: int = DEFAULT_MEMORY_LEVEL
) -> bytes:
    """The compressed server frame of ``message`` (text for ``str``, binary for ``bytes``), as shared mode sends it."""
    if isinstance(message, str):
        first, data = _FIN_RSV1_TEXT, message.encode("utf-8")
    else:
        first, data = _FIN_RSV1_BINARY, message
    payload = deflate_message(data, window_bits, memory_level)
    return frame_header(first, len(payload)) + payload


class SharedFrame(bytes):
    """The plain frame of one fanned-out message (it *is* those bytes), plus its compressed frames.

    Receivers without compression queue the bytes themselves; a receiver in
    shared-compression mode asks ``deflated(bits)``, built once per window size
    for the whole fan-out. Code that only knows bytes keeps working. ``message``
    is what was framed: ``str`` (a text frame) or ``bytes`` (binary).
    """

    message: str | bytes
    _deflated: dict[int, bytes]

    def __new__(
        cls, plain_frame: bytes | bytearray, message: str | bytes
    ) -> SharedFrame:
        frame = super().__new__(cls, plain_frame)
        frame.message = message
        frame._deflated = {}
        return frame

    def deflated(self, window_bits: int) -> bytes:
        """The compressed frame for receivers with this window size (built by the first of them)."""
        try:
            return self._deflated[
                window_bits
            ]  # every receiver after the first: one dict lookup
        except KeyError:
            frame = self._deflated[window_bits] = deflated_frame(
                self.message, window_bits
            )
            return frame
