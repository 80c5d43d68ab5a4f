"""permessage-deflate (RFC 7692) and the message size limit, as wsproto extensions, without a socket."""

from __future__ import annotations

import random
import tracemalloc
import zlib

from wsproto.extensions import PerMessageDeflate as WsprotoPerMessageDeflate

from rawws.core.events import Closed, MessageReceived
from rawws.core.extensions import PerMessageDeflate
from rawws.core.protocol import WebSocket
from testkit import masked_frame


def deflated(data: bytes) -> bytes:
    """RFC 7692 §7.2.1: compress, sync-flush, drop the trailing 00 00 ff ff."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def deflate_server(
    extension_class=PerMessageDeflate, max_message_bytes: int = 1 << 20
) -> WebSocket:
    if extension_class is PerMessageDeflate:
        extension = PerMessageDeflate(max_message_bytes=max_message_bytes)
    else:
        extension = extension_class()
    extension.finalize("permessage-deflate")
    return WebSocket(
        client=False, extensions=[extension], max_message_bytes=max_message_bytes
    )


def events_of(ws: WebSocket, data: bytes) -> list:
    return list(ws.receive_data(data))


def ping_between_compressed_fragments(opcode: int, text: bytes) -> bytes:
    body = deflated(text)
    half = len(body) // 2
    return (
        masked_frame(opcode, body[:half], fin=False, rsv1=True)
        + masked_frame(0x9, b"ping")
        + masked_frame(0x0, body[half:])
    )


def test_compressed_message_is_inflated():
    """RFC 7692 §7.2.3.1: "Hello" compressed is f2 48 cd c9 c9 07 00."""
    assert deflated(b"Hello") == bytes.fromhex("f248cdc9c90700")
    events = events_of(
        deflate_server(), masked_frame(0x1, bytes.fromhex("f248cdc9c90700"), rsv1=True)
    )
    assert events == [MessageReceived("Hello")]


def test_ping_between_compressed_fragments_keeps_the_message_compressed():
    """RFC 6455 §5.4 allows the ping there; the continuation must still be inflated."""
    text = "fragmented, compressed, interrupted by a ping " * 20
    events = events_of(
        deflate_server(), ping_between_compressed_fragments(0x1, text.encode())
    )
    assert events == [MessageReceived(text)]


def test_ping_between_compressed_binary_fragments():
    data = bytes(range(256)) * 40
    events = events_of(deflate_server(), ping_between_compressed_fragments(0x2, data))
    assert events == [MessageReceived(data)]


def test_wsproto_alone_gets_the_ping_between_fragments_wrong():
    """Why rawws subclasses the extension. When this starts passing upstream, the override can go."""
    text = "fragmented, compressed, interrupted by a ping " * 20
    events = events_of(
        deflate_server(WsprotoPerMessageDeflate),
        ping_between_compressed_fragments(0x1, text.encode()),
    )
    assert events != [MessageReceived(text)]


def test_compressed_control_frame_is_1002():
    """RFC 7692 §6.1: RSV1 on a control frame is an error."""
    events = events_of(deflate_server(), masked_frame(0x9, b"x", rsv1=True))
    assert [type(e) for e in events] == [Closed] and events[0].code == 1002


def test_compressed_continuation_flag_is_1002():
    """RFC 7692 §6.1: RSV1 is set only on the first frame of a message."""
    body = deflated(b"abcdef")
    data = masked_frame(0x1, body[:2], fin=False, rsv1=True) + masked_frame(
        0x0, body[2:], rsv1=True
    )
    events = events_of(deflate_server(), data)
    assert events[-1].code == 1002


def test_corrupt_deflate_data_is_1007():
    events = events_of(
        deflate_server(), masked_frame(0x1, b"\xff\xff\xff\xff", rsv1=True)
    )
    assert events[-1] == Closed(1007, events[-1].reason, by_peer=False)


def test_compression_bomb_is_1009_without_inflating_it():
    """16 MiB of zeros deflate to ~16 KiB; inflation stops just past the 1 MiB limit."""
    bomb = deflated(bytes(16 << 20))
    assert len(bomb) < 64 * 1024
    ws = deflate_server(max_message_bytes=1 << 20)
    tracemalloc.start()
    try:
        events = events_of(ws, masked_frame(0x2, bomb, rsv1=True))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [type(e) for e in events] == [Closed] and events[0].code == 1009
    assert peak < 8 << 20, f"inflating used {peak} bytes"


def test_inflated_size_is_counted_across_fragments():
    body = deflated(bytes(3000))
    data = masked_frame(0x2, body[:5], fin=False, rsv1=True) + masked_frame(
        0x0, body[5:]
    )
    events = events_of(deflate_server(max_message_bytes=2000), data)
    assert events[-1].code == 1009


def test_limit_resets_between_messages():
    ws = deflate_server(max_message_bytes=1000)
    data = b"".join(
        masked_frame(0x2, deflated(bytes(900)), rsv1=True) for _ in range(5)
    )
    assert events_of(ws, data) == [MessageReceived(bytes(900))] * 5


def test_size_limit_ignores_control_frames_inside_a_message():
    ws = WebSocket(client=False, max_message_bytes=10)
    data = (
        masked_frame(0x2, bytes(6), fin=False)
        + masked_frame(0x9, bytes(100))
        + masked_frame(0x0, bytes(4))
    )
    assert events_of(ws, data) == [MessageReceived(bytes(10))]


def test_context_takeover_carries_the_window_across_messages():
    """Without *_no_context_takeover, the second message may refer back to the first."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    first = (
        compressor.compress(b"repeat me please") + compressor.flush(zlib.Z_SYNC_FLUSH)
    )[:-4]
    second = (
        compressor.compress(b"repeat me please") + compressor.flush(zlib.Z_SYNC_FLUSH)
    )[:-4]
    ws = deflate_server()
    data = masked_frame(0x1, first, rsv1=True) + masked_frame(0x1, second, rsv1=True)
    assert events_of(ws, data) == [MessageReceived("repeat me please")] * 2


def test_incompressible_message_at_the_limit_is_accepted_though_its_frame_is_longer():
    """The limit is on the message; deflate makes random bytes a little longer on the wire."""
    data = random.Random(7).randbytes(1024)
    body = deflated(data)
    assert len(body) > 1024
    events = events_of(
        deflate_server(max_message_bytes=1024), masked_frame(0x2, body, rsv1=True)
    )
    assert events == [MessageReceived(data)]
