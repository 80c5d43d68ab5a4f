"""Shared-compressor permessage-deflate: one deflate per message, frames any RFC 7692 client inflates.

The compressed frames are checked against wsproto's own ``PerMessageDeflate``
client (an implementation we did not write) and against the RFC's byte example.
"""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.extensions import PerMessageDeflate as WsprotoPerMessageDeflate
from wsproto.frame_protocol import FrameProtocol, Opcode

from rawws.chat.hub import text_frame
from rawws.core.deflate import (
    SharedFrame,
    compression_mode,
    deflate_message,
    deflated_text_frame,
)
from rawws.core.handshake import negotiate_deflate
from rawws.core.protocol import WebSocket

BROWSER_OFFER = [
    "permessage-deflate; client_max_window_bits"
]  # what Chromium and Firefox send


def server(mode: str = "shared", bits: int = 12) -> tuple[WebSocket, str]:
    negotiated = negotiate_deflate(BROWSER_OFFER, 1 << 20, mode, bits)
    assert negotiated is not None
    extension, answer = negotiated
    return WebSocket(
        client=False, extensions=[extension], max_message_bytes=1 << 20
    ), answer


def wsproto_client(answer: str) -> FrameProtocol:
    """wsproto's own client side, configured from our 101 answer as any client would be."""
    extension = WsprotoPerMessageDeflate(client_max_window_bits=15)
    extension.finalize(answer)
    return FrameProtocol(client=True, extensions=[extension])


def inflate_all(client: FrameProtocol, data: bytes) -> list[str]:
    client.receive_bytes(data)
    messages = []
    for frame in client.received_frames():
        assert frame.opcode is Opcode.TEXT and frame.message_finished
        messages.append(frame.payload)
    return messages


def test_rfc_7692_hello_example_and_no_context_between_messages():
    """§7.2.3.1: "Hello" is f2 48 cd c9 c9 07 00; without context takeover the second is the same (§7.2.3.2)."""
    hello = bytes.fromhex("c107f248cdc9c90700")
    assert deflated_text_frame("Hello", 12) == hello
    assert deflated_text_frame("Hello", 12) == hello
    ws, _ = server()
    assert ws.send("Hello") == hello and ws.send("Hello") == hello


def test_empty_message_after_another_inflates_to_nothing():
    ws, answer = server()
    frames = ws.send("x") + ws.send("") + ws.send("")
    assert inflate_all(wsproto_client(answer), frames) == ["x", "", ""]


@settings(max_examples=150, deadline=None)
@given(
    texts=st.lists(st.text(max_size=3000), min_size=1, max_size=8),
    bits=st.integers(min_value=9, max_value=15),
)
def test_shared_frames_are_the_connection_frames_and_wsproto_inflates_them(
    texts: list[str], bits: int
):
    ws, answer = server("shared", bits)
    client = wsproto_client(answer)
    shared = b"".join(text_frame(text).deflated(bits) for text in texts)
    assert shared == b"".join(ws.send(text) for text in texts)
    assert inflate_all(client, shared) == texts


@settings(max_examples=50, deadline=None)
@given(texts=st.lists(st.text(min_size=1, max_size=500), min_size=2, max_size=6))
def test_dedicated_mode_keeps_its_context_and_wsproto_follows_it(texts: list[str]):
    ws, answer = server("dedicated")
    assert "no_context_takeover" not in answer
    assert (
        inflate_all(wsproto_client(answer), b"".join(ws.send(text) for text in texts))
        == texts
    )


def test_shared_connection_holds_no_zlib_state_after_a_message_each_way():
    ws, answer = server()
    extension = ws._frames.extensions[0]
    # A client honouring client_no_context_takeover: a fresh compressor per message.
    compressor = zlib.compressobj(6, zlib.DEFLATED, -12)
    payload = compressor.compress(b'{"type":"say","text":"hi"}') + compressor.flush(
        zlib.Z_SYNC_FLUSH
    )
    mask = b"\x01\x02\x03\x04"
    body = payload[:-4]
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(body))
    events = list(ws.receive_data(bytes((0xC1, 0x80 | len(body))) + mask + masked))
    assert [event.data for event in events] == ['{"type":"say","text":"hi"}']  # type: ignore[attr-defined]
    ws.send("an answer")
    assert extension._compressor is None and extension._decompressor is None
    assert ws.shared_deflate_bits == 12


def test_dedicated_connection_keeps_its_compressor():
    ws, _ = server("dedicated")
    ws.send("a message")
    assert ws._frames.extensions[0]._compressor is not None
    assert ws.shared_deflate_bits is None


def test_shared_frame_is_its_plain_bytes_and_deflates_once_per_window():
    frame = text_frame("room message")
    assert isinstance(frame, SharedFrame) and frame == WebSocket(client=False).send(
        "room message"
    )
    first = frame.deflated(12)
    assert frame.deflated(12) is first  # built once, the same object for every member
    assert frame.deflated(10) is not first


def test_a_shared_binary_frame_deflates_as_binary_and_inflates_back():
    message = bytes(range(256)) * 4
    frame = SharedFrame(WebSocket(client=False).send(message), message)
    assert frame[0] == 0x82  # plain: FIN + binary
    deflated = frame.deflated(12)
    assert deflated[0] == 0xC2  # FIN + RSV1 + binary (RFC 7692 §6)
    _, answer = server("shared", 12)
    client = wsproto_client(answer)
    client.receive_bytes(deflated)
    (received,) = list(client.received_frames())
    assert (received.opcode, received.payload) == (Opcode.BINARY, message)


def test_deflate_message_with_interleaved_window_sizes_stays_independent():
    """Each window size has its own compressor; a message never depends on another."""
    for data in (b"abc" * 100, b"", b"xyz" * 50):
        for bits in (9, 15, 9):
            inflater = zlib.decompressobj(-bits)
            assert (
                inflater.decompress(deflate_message(data, bits) + b"\x00\x00\xff\xff")
                == data
            )


@pytest.mark.parametrize(
    ("value", "mode"),
    [(True, "shared"), (False, "off"), ("Dedicated", "dedicated"), ("0", "off")],
)
def test_compression_mode_spellings(value: str | bool, mode: str):
    assert compression_mode(value) == mode


def test_compression_mode_refuses_unknown_words():
    with pytest.raises(ValueError, match="shared, dedicated, off"):
        compression_mode("fast")
