"""``rawws.broadcast``: one message to many connections, framed once, never waiting for a slow reader.

The message is framed once: server frames are not masked, so every receiver
without compression queues the very same bytes. Receivers in shared
compression (``compression="deflate"``, the default) share one compressed
frame per window size, deflated once for all of them (``SharedFrame``); a
receiver with a compression context of its own (``"dedicated"``) encodes the
message itself. Each frame goes into the receiver's bounded outbox and the
writes leave once per event-loop turn; a receiver whose outbox would overflow
gets the slow-consumer policy (closed with 1008, counted) and the others go on.
Connections that are closing or closed are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable

from rawws.core.deflate import SharedFrame
from rawws.core.frames import TunedFrameProtocol
from rawws.server.connection import ServerConnection

# Unmasked and without extensions: the plain frame every uncompressed receiver gets.
_ENCODER = TunedFrameProtocol(client=False, extensions=[])


def shared_frame(message: str | bytes) -> SharedFrame:
    """``message`` framed once for many receivers: text for ``str``, binary for bytes-like."""
    return SharedFrame(_ENCODER.send_data(message, True), message)


def broadcast(
    connections: Iterable[ServerConnection],
    message: str | bytes | bytearray | memoryview,
) -> int:
    """Queue ``message`` on every open connection without waiting; how many took it.

    ``connections`` may be any iterable (a set the handler keeps, ``server.connections``);
    it is read once, so a connection closed on the way does not disturb it.
    """
    if isinstance(message, (bytearray, memoryview)):
        message = bytes(message)
    elif not isinstance(message, (str, bytes)):
        raise TypeError(f"a message is str or bytes, not {type(message).__name__}")
    frame = shared_frame(message)
    sent = 0
    for connection in list(connections):
        if connection.send_shared(message, frame):
            sent += 1
    return sent
