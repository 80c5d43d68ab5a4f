"""The sans-I/O WebSocket (RFC 6455 §5-7): frames in as bytes, events and reply bytes out."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawws.core.events import Closed, MessageReceived, PongReceived
from rawws.core.extensions import PerMessageDeflate
from rawws.core.protocol import State, WebSocket
from rawws.errors import ConnectionClosed
from testkit import masked_frame

MASK = bytes([0x37, 0xFA, 0x21, 0x3D])  # the key of RFC 6455 §5.7's examples


def server(max_message_bytes: int = 1 << 20, deflate: bool = False) -> WebSocket:
    extensions = []
    if deflate:
        extension = PerMessageDeflate(max_message_bytes=max_message_bytes)
        extension.finalize("permessage-deflate")
        extensions.append(extension)
    return WebSocket(
        client=False, extensions=extensions, max_message_bytes=max_message_bytes
    )


def client(deflate: bool = False) -> WebSocket:
    extensions = []
    if deflate:
        extension = PerMessageDeflate()
        extension.finalize("permessage-deflate")
        extensions.append(extension)
    return WebSocket(client=True, extensions=extensions)


def feed(ws: WebSocket, data: bytes) -> tuple[list, bytes]:
    """All events for ``data`` and every byte the connection answered with."""
    events = list(ws.receive_data(data))
    return events, ws.data_to_send()


# -- §5.7 examples ---------------------------------------------------------------


def test_single_frame_masked_text_message():
    """§5.7: 0x81 0x85 0x37 0xfa 0x21 0x3d 0x7f 0x9f 0x4d 0x51 0x58 contains "Hello"."""
    events, _ = feed(server(), bytes.fromhex("818537fa213d7f9f4d5158"))
    assert events == [MessageReceived("Hello")]


def test_server_frames_have_the_two_byte_header():
    """§5.7: an unmasked "Hello" is 0x81 0x05 then the payload: two bytes of framing."""
    assert server().send("Hello") == b"\x81\x05Hello"


@pytest.mark.parametrize(
    ("size", "header"),
    [
        (125, b"\x82\x7d"),
        (126, b"\x82\x7e\x00\x7e"),
        (256, b"\x82\x7e\x01\x00"),  # §5.7: 256 bytes binary in a single unmasked frame
        (65536, b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),  # §5.7: 64 KiB
    ],
)
def test_payload_length_encodings(size, header):
    """§5.2: 7-bit, 7+16-bit and 7+64-bit lengths, the shortest that fits."""
    assert server().send(bytes(size))[: len(header)] == header


def test_fragmented_unmasked_text_message_is_reassembled_by_a_client():
    """§5.7: 0x01 0x03 "Hel", then 0x80 0x02 "lo"."""
    events, _ = feed(client(), b"\x01\x03Hel" + b"\x80\x02lo")
    assert events == [MessageReceived("Hello")]


def test_ping_is_answered_with_a_pong_carrying_the_same_payload():
    """§5.5.2-5.5.3: the pong's application data is the ping's."""
    events, reply = feed(server(), masked_frame(0x9, b"Hello", mask=MASK))
    assert events == []
    assert reply == b"\x8a\x05Hello"


def test_unsolicited_pong_is_reported_and_not_answered():
    events, reply = feed(server(), masked_frame(0xA, b"x"))
    assert events == [PongReceived(b"x")]
    assert reply == b""


def test_ping_between_fragments_is_answered_before_the_message_completes():
    """§5.4: control frames may be injected in the middle of a fragmented message."""
    data = (
        masked_frame(0x1, b"Hel", fin=False)
        + masked_frame(0x9, b"p")
        + masked_frame(0x0, b"lo")
    )
    ws = server()
    seen = []
    for event in ws.receive_data(data):
        seen.append((event, ws.data_to_send()))
    assert seen == [(MessageReceived("Hello"), b"\x8a\x01p")]


# -- closing (§5.5.1, §7) ----------------------------------------------------------


def close_frame(code: int, reason: bytes = b"") -> bytes:
    return masked_frame(0x8, struct.pack("!H", code) + reason)


def test_peer_close_is_echoed_and_transport_closed():
    ws = server()
    events, reply = feed(ws, close_frame(1000, b"bye"))
    assert events == [Closed(1000, "bye", by_peer=True)]
    assert reply == b"\x88\x05\x03\xe8bye"  # our close echoes the code (§5.5.1)
    assert ws.state is State.CLOSED and ws.close_transport


def test_close_without_status_is_1005_and_answered_empty():
    events, reply = feed(server(), masked_frame(0x8, b""))
    assert events == [Closed(1005, "", by_peer=True)]
    assert reply == b"\x88\x00"


def test_message_then_close_in_one_read_keeps_the_order():
    """A reply to the message must leave before our answer to the close."""
    ws = server()
    wire = b""
    for event in ws.receive_data(masked_frame(0x1, b"last") + close_frame(1000)):
        wire += ws.data_to_send()
        if isinstance(event, MessageReceived):
            wire += ws.send(event.data)
    wire += ws.data_to_send()
    assert wire == b"\x81\x04last" + b"\x88\x02\x03\xe8"


def test_locally_started_close_finishes_with_the_peers_answer():
    ws = server()
    assert ws.close(1001, "going away") == b"\x88\x0c\x03\xe9going away"
    assert ws.state is State.CLOSING
    events, reply = feed(ws, close_frame(1001))
    assert events == [
        Closed(1001, "", by_peer=False)
    ]  # the reason of the frame received
    assert reply == b""
    assert ws.state is State.CLOSED


def test_crossing_closes_report_the_code_received():
    """§7.1.5: the close code is the one in the close frame received, even if ours said otherwise."""
    ws = server()
    ws.close(1000)
    events, _ = feed(ws, close_frame(1009, b"too big"))
    assert events == [Closed(1009, "too big", by_peer=False)]
    assert ws.close_code == 1009


def test_messages_after_our_close_are_not_delivered():
    ws = server()
    ws.close()
    events, _ = feed(ws, masked_frame(0x1, b"late"))
    assert events == []


def test_eof_without_close_frame_is_1006():
    ws = server()
    assert list(ws.receive_eof()) == [Closed(1006, "connection lost", by_peer=True)]
    assert ws.close_transport


def test_sending_after_close_raises():
    ws = server()
    feed(ws, close_frame(1000))
    with pytest.raises(ConnectionClosed):
        ws.send("too late")


def test_data_after_close_is_ignored():
    ws = server()
    feed(ws, close_frame(1000))
    assert feed(ws, masked_frame(0x1, b"x")) == ([], b"")


# -- failing the connection (§7.1.7) --------------------------------------------------


def failure(data: bytes, ws: WebSocket | None = None) -> int:
    ws = ws or server()
    events, reply = feed(ws, data)
    assert len(events) == 1 and isinstance(events[0], Closed) and not events[0].by_peer
    assert reply[:1] == b"\x88", "a close frame goes out before TCP is dropped"
    code = struct.unpack("!H", reply[2:4])[0]
    assert code == events[0].code
    assert ws.close_transport and ws.state is State.CLOSED
    return code


def test_invalid_utf8_text_is_1007():
    assert (
        failure(
            masked_frame(
                0x1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
            )
        )
        == 1007
    )


def test_invalid_utf8_fails_fast_on_the_first_fragment():
    """Autobahn 6.4: fail as soon as the bad sequence is seen, before the message ends."""
    assert failure(masked_frame(0x1, b"\xf4\x90\x80\x80", fin=False)) == 1007


def test_unmasked_client_frame_is_1002():
    """§5.1: a server MUST close the connection on an unmasked frame."""
    assert failure(b"\x81\x05Hello") == 1002


def test_reserved_bits_without_extension_are_1002():
    assert failure(masked_frame(0x1, b"x", rsv1=True)) == 1002


def test_reserved_opcode_is_1002():
    assert failure(masked_frame(0x3, b"")) == 1002


def test_fragmented_control_frame_is_1002():
    assert failure(masked_frame(0x9, b"", fin=False)) == 1002


def test_continuation_without_start_is_1002():
    assert failure(masked_frame(0x0, b"x")) == 1002


def test_close_code_out_of_range_is_1002():
    assert failure(close_frame(999)) == 1002


def test_message_larger_than_limit_is_1009_from_its_header_alone():
    """The declared length is enough: no payload byte needs to be buffered."""
    header_only = b"\x82\xff" + struct.pack("!Q", 1 << 40) + MASK
    assert failure(header_only, server(max_message_bytes=1000)) == 1009


def test_fragments_adding_up_past_the_limit_are_1009():
    data = masked_frame(0x2, bytes(600), fin=False) + masked_frame(0x0, bytes(600))
    assert failure(data, server(max_message_bytes=1000)) == 1009


def test_message_at_the_limit_is_accepted():
    data = masked_frame(0x2, bytes(600), fin=False) + masked_frame(0x0, bytes(400))
    events, _ = feed(server(max_message_bytes=1000), data)
    assert events == [MessageReceived(bytes(1000))]


# -- keepalive bookkeeping -------------------------------------------------------------


def test_ping_is_outstanding_until_its_pong():
    ws = server()
    frame = ws.ping(b"abcd")
    assert frame == b"\x89\x04abcd"
    assert ws.awaiting_pong
    feed(ws, masked_frame(0xA, b"other"))
    assert ws.awaiting_pong
    feed(ws, masked_frame(0xA, b"abcd"))
    assert not ws.awaiting_pong


# -- properties ---------------------------------------------------------------------

messages = st.lists(
    st.one_of(st.text(max_size=300), st.binary(max_size=300)), max_size=8
)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in points + [len(data)]:
        pieces.append(data[start:point])
        start = point
    return [p for p in pieces if p]


@settings(max_examples=150, deadline=None)
@given(
    messages,
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
    st.booleans(),
)
def test_client_frames_round_trip_through_the_server_in_any_chunking(
    payloads, cuts, deflate
):
    sender, receiver = client(deflate), server(deflate=deflate)
    wire = b"".join(sender.send(p) for p in payloads)
    received = []
    for piece in chunked(wire, cuts):
        received += [e.data for e in receiver.receive_data(piece)]
    assert received == payloads


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_and_any_failure_closes(data):
    ws = server(max_message_bytes=100, deflate=True)
    events, reply = feed(ws, data)
    for event in events:
        assert isinstance(event, (MessageReceived, PongReceived, Closed))
    if any(isinstance(e, Closed) for e in events):
        assert ws.close_transport and ws.state is State.CLOSED
        assert reply, (
            "a failure or a peer's close is always answered with a close frame"
        )


def test_ping_after_our_close_is_not_answered():
    """§5.5.1: after sending a Close, an endpoint sends no more data; a pong would be refused by wsproto."""
    ws = server()
    ws.close(1001)
    events, reply = feed(ws, masked_frame(0x9, b"late ping"))
    assert events == [] and reply == b""
    assert ws.state is State.CLOSING


# -- what an edge that holds replies back relies on --------------------------------


def test_messages_may_be_sent_while_the_answer_to_a_close_is_not_taken():
    """RFC 6455 §5.5.1: replies to what came before the close go out ahead of our answer to it."""
    ws = server()
    events = list(ws.receive_data(masked_frame(0x8, struct.pack("!H", 1000))))
    assert events == [Closed(1000, "", by_peer=True)] and ws.state is State.CLOSED
    assert ws.can_send and ws.output_pending
    assert ws.send("late reply") == b"\x81\x0alate reply"
    assert ws.data_to_send() == b"\x88\x02\x03\xe8"
    assert not ws.can_send and not ws.output_pending
    with pytest.raises(ConnectionClosed):
        ws.send("too late")


def test_after_a_failure_only_until_its_close_is_taken():
    ws = server()
    list(ws.receive_data(masked_frame(0x1, b"\xff")))  # not UTF-8: 1007
    assert ws.can_send
    ws.data_to_send()
    assert not ws.can_send


def test_no_window_once_we_closed_first_or_gave_up():
    ws = server()
    ws.close(1000)
    list(ws.receive_data(masked_frame(0x8, struct.pack("!H", 1000))))
    assert not ws.can_send and not ws.output_pending  # our close was already sent
    aborted = server()
    list(aborted.receive_data(masked_frame(0x8, struct.pack("!H", 1000))))
    aborted.abort()
    assert not aborted.can_send


def test_input_pending_tells_whether_more_events_may_come_of_what_was_fed():
    ws = server()
    frames = masked_frame(0x1, b"one") + masked_frame(0x1, b"two")
    events = ws.receive_data(frames)
    assert not ws.input_pending  # nothing fed until the events are asked for
    assert next(events) == MessageReceived("one")
    assert ws.input_pending  # "two" is still in the frame engine
    assert next(events) == MessageReceived("two")
    assert not ws.input_pending
    assert next(events, None) is None
    partial = masked_frame(0x1, b"three")[:4]
    assert list(ws.receive_data(partial)) == [] and ws.input_pending


def test_output_pending_shows_a_pong_not_yet_taken():
    ws = server()
    events = list(ws.receive_data(masked_frame(0x9, b"p") + masked_frame(0x1, b"m")))
    assert events == [MessageReceived("m")] and ws.output_pending
    assert ws.data_to_send() == b"\x8a\x01p" and not ws.output_pending
