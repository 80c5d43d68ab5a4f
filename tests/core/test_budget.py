"""What a peer's frames may cost (issue 20, items 1 and 3), sans I/O: the read budget, the inflater's
slices, and what a message under assembly holds.

A compressed frame of about a kilobyte inflates to a megabyte. These tests feed
such frames to the core and check counts, never times: how many bytes were
inflated before parsing stopped, how many bytes a partial message holds (as
tracemalloc sees Python's allocations), and that what is delivered in the end
is exactly what was sent.
"""

from __future__ import annotations

import gc
import tracemalloc
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from rawws.core.budget import RESUME_FRACTION, ReadBudget
from rawws.core.events import Closed, MessageReceived
from rawws.core.extensions import INFLATE_SLICE_BYTES, PerMessageDeflate
from rawws.core.protocol import WebSocket
from testkit import masked_frame

TEXT, BINARY, CONTINUATION = 0x1, 0x2, 0x0
KiB, MiB = 1024, 1024 * 1024


def deflated(data: bytes) -> bytes:
    """``data`` as one permessage-deflate message's payload (RFC 7692 §7.2.1: the tail removed)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def compressed_server(max_message_bytes: int = 1 * MiB) -> WebSocket:
    extension = PerMessageDeflate(max_message_bytes=max_message_bytes)
    extension.finalize("permessage-deflate")
    return WebSocket(
        client=False, extensions=[extension], max_message_bytes=max_message_bytes
    )


def bomb(size: int = 1 * MiB - 64) -> tuple[bytes, bytes]:
    """A text message of ``size`` bytes and its compressed frame, about a thousandth of it."""
    message = b"a" * size
    return message, masked_frame(TEXT, deflated(message), rsv1=True)


def messages(events: list[object]) -> list[str | bytes]:
    return [event.data for event in events if type(event) is MessageReceived]


# -- the budget itself ----------------------------------------------------------------


@settings(max_examples=200)
@given(
    rate=st.floats(1_000, 1e8),
    steps=st.lists(
        st.tuples(st.floats(0, 0.5), st.integers(0, INFLATE_SLICE_BYTES)),
        min_size=1,
        max_size=200,
    ),
)
def test_what_is_spent_never_exceeds_the_burst_plus_the_refill_plus_one_step(
    rate: float, steps: list[tuple[float, int]]
) -> None:
    """A caller that spends only while the budget is not overdrawn spends at most
    capacity + rate × elapsed + one step, however the steps and pauses fall."""
    budget = ReadBudget(1e9, rate, 0.0)
    now = spent = 0.0
    for pause, cost in steps:
        now += pause
        budget.refill(now)
        if budget.exhausted:
            assert budget.ready_in(now) > 0
            continue
        budget.spend(0, cost)
        spent += cost
        assert spent <= budget.byte_capacity + rate * now + cost
    assert budget.bytes_spent == spent


def test_ready_in_is_when_an_eighth_of_the_bucket_is_back() -> None:
    budget = ReadBudget(100.0, 1000.0, 0.0, burst_s=1.0)
    budget.spend(0, 1500)  # 500 in debt
    assert budget.exhausted
    wait = budget.ready_in(0.0)
    assert wait == (500 + 1000 / RESUME_FRACTION) / 1000
    budget.refill(wait)
    assert not budget.exhausted


# -- the inflater works in slices, each paid for --------------------------------------


def test_a_compressed_frame_is_inflated_a_slice_at_a_time_while_the_budget_allows() -> (
    None
):
    """The attack of issue 20: frames of ~1 KiB that each inflate to ~1 MiB, sent together.
    With a budget of 128 KiB, parsing stops once it is spent: at most one slice more is inflated,
    not a megabyte a frame (before the fix, all of them were inflated in one call each)."""
    ws = compressed_server()
    budget = ReadBudget(1e6, 1e6, 0.0, burst_s=0.128)  # 128 KB at once
    ws.read_budget = budget
    _, frame = bomb()
    events = list(ws.receive_data(frame * 20))
    assert events == []
    assert ws.throttled
    assert budget.bytes_spent <= budget.byte_capacity + INFLATE_SLICE_BYTES
    assert ws.input_pending  # the other frames wait, unparsed


def test_throttled_parsing_resumes_where_it_stopped_and_delivers_every_message_intact() -> (
    None
):
    ws = compressed_server()
    budget = ReadBudget(1e6, 4 * MiB, 0.0, burst_s=0.25)
    ws.read_budget = budget
    message, frame = bomb()
    got = messages(list(ws.receive_data(frame * 5)))
    now = 0.0
    while len(got) < 5:
        assert ws.throttled
        now += budget.ready_in(now)
        budget.refill(now)
        got += messages(list(ws.receive_data(b"")))
    assert got == [message.decode()] * 5
    assert budget.bytes_spent == 5 * len(message)
    assert budget.frames_spent == 5


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(
        st.tuples(
            st.text(min_size=0, max_size=40), st.integers(1, 5000), st.booleans()
        ),
        min_size=1,
        max_size=4,
    ),
    cut=st.integers(1, 2000),
    capacity=st.integers(1, 200_000),
)
def test_slices_and_budget_change_nothing_in_what_is_delivered(
    texts: list[tuple[str, int, bool]], cut: int, capacity: int
) -> None:
    """Compressible text (a short text repeated), whole or in two fragments, bytes fed in pieces of any size,
    any budget: the messages delivered are the ones sent (the slicing is invisible but for the pauses)."""
    ws = compressed_server(max_message_bytes=64 * MiB)
    budget = ReadBudget(1e9, float(capacity), 0.0, burst_s=1.0)
    ws.read_budget = budget
    sent, wire = [], b""
    for text, repeat, fragmented in texts:
        data = (text * repeat).encode()
        sent.append(data.decode())
        payload = deflated(data)
        if fragmented and len(payload) > 1:
            half = len(payload) // 2
            wire += masked_frame(TEXT, payload[:half], fin=False, rsv1=True)
            wire += masked_frame(CONTINUATION, payload[half:])
        else:
            wire += masked_frame(TEXT, payload, rsv1=True)
    got: list[str | bytes] = []
    now = 0.0
    for start in range(0, len(wire), cut):
        got += messages(list(ws.receive_data(wire[start : start + cut])))
        while ws.throttled:
            now += budget.ready_in(now)
            budget.refill(now)
            got += messages(list(ws.receive_data(b"")))
    assert got == sent


def test_a_bomb_over_the_message_limit_is_still_1009_after_a_slice_or_two() -> None:
    ws = compressed_server(max_message_bytes=100 * KiB)
    ws.read_budget = ReadBudget(1e6, 1e9, 0.0)
    _, frame = bomb()
    events = list(ws.receive_data(frame))
    assert [type(e) for e in events] == [Closed]
    assert ws.close_code == 1009


# -- what a message under assembly holds ------------------------------------------------


def held_by(ws: WebSocket, frame: bytes) -> int:
    """Bytes Python allocated, and still holds, for ``frame`` fed to ``ws`` (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        assert list(ws.receive_data(frame)) == []
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_a_held_fragment_with_an_astral_character_holds_its_utf8_bytes_not_a_wide_str() -> (
    None
):
    """Issue 20, item 3: one astral character made the partial ``str`` four bytes a character,
    ~4 MiB held for a fragment of ~1 KiB. Now the fragment is held as its UTF-8 bytes: at most the
    message limit (1 MiB), plus the inflater's window."""
    ws = compressed_server()
    text = ("\U0001f600" + "a" * (1 * MiB - 200)).encode()
    fragment = masked_frame(TEXT, deflated(text), fin=False, rsv1=True)
    assert len(fragment) < 2 * KiB
    held = held_by(ws, fragment)
    assert ws.held_bytes == len(text)
    assert held <= 1 * MiB + 128 * KiB, (
        f"{held} bytes held for a {len(fragment)}-byte fragment"
    )


def test_the_whole_message_is_decoded_once_and_bad_utf8_still_fails_in_its_fragment() -> (
    None
):
    ws = compressed_server()
    first = "é\U0001f600".encode()
    # A character split across the two fragments is fine; it is decoded once the message is whole.
    events = list(ws.receive_data(masked_frame(TEXT, first[:3], fin=False)))
    assert events == [] and ws.held_bytes == 3
    events = list(ws.receive_data(masked_frame(CONTINUATION, first[3:])))
    assert messages(events) == ["é\U0001f600"] and ws.held_bytes == 0
    # A byte that can never be UTF-8 fails at once, in the first fragment (RFC 6455 §8.1).
    events = list(ws.receive_data(masked_frame(TEXT, b"ok\xff", fin=False)))
    assert [type(e) for e in events] == [Closed]
    assert ws.close_code == 1007


def test_a_slice_s_leftover_counts_as_input_pending() -> None:
    """``input_pending`` False means resuming yields nothing more: compressed bytes a slice left over
    are input still to parse, even once the wire bytes are all taken."""
    ws = compressed_server()
    budget = ReadBudget(
        1e6, 1e6, 0.0, burst_s=0.01
    )  # 10 KB: the first slice overdraws it
    ws.read_budget = budget
    _, frame = bomb()
    assert list(ws.receive_data(frame)) == []
    assert ws.throttled and ws.input_pending


def test_tiny_frames_are_paced_by_the_frame_budget() -> None:
    """Each frame costs its parsing whatever its size: 100 empty frames against 10 at once."""
    ws = WebSocket(client=False, max_message_bytes=MiB)
    budget = ReadBudget(40.0, 1e9, 0.0, burst_s=0.25)  # 10 frames at once
    ws.read_budget = budget
    got = messages(list(ws.receive_data(masked_frame(BINARY, b"") * 100)))
    assert len(got) == 11  # the eleventh overdraws it; nothing after
    assert ws.throttled and ws.input_pending
    now = 0.0
    while len(got) < 100:
        now += budget.ready_in(now)
        budget.refill(now)
        got += messages(list(ws.receive_data(b"")))
    assert got == [b""] * 100


def test_a_plain_payload_costs_its_frame_and_a_compressed_one_what_it_inflates_to() -> (
    None
):
    """On a connection with compression, a plain message is paid by its frame alone, a compressed one by its bytes too."""
    ws = compressed_server()
    budget = ReadBudget(1e6, 1e9, 0.0)
    ws.read_budget = budget
    plain = b"p" * (256 * KiB)
    message, frame = bomb(300 * KiB)
    got = messages(list(ws.receive_data(masked_frame(BINARY, plain) + frame)))
    assert got == [plain, message.decode()]
    assert (budget.frames_spent, budget.bytes_spent) == (2, len(message))


def test_plain_frames_are_not_held_back_by_an_empty_byte_bucket() -> None:
    """Without compression a byte bucket of one byte holds nothing back: the peer paid for every byte by sending it."""
    ws = WebSocket(client=False, max_message_bytes=MiB)
    budget = ReadBudget(1e6, 1.0, 0.0)  # a byte bucket of one byte, a second
    ws.read_budget = budget
    payloads = [bytes([n]) * (64 * KiB) for n in range(10)]
    wire = b"".join(masked_frame(BINARY, payload) for payload in payloads)
    assert messages(list(ws.receive_data(wire))) == payloads
    assert not ws.throttled
    assert (budget.frames_spent, budget.bytes_spent) == (10, 0)
