"""The bounded per-connection write queue."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rawws.core.outbox import Outbox


def test_everything_queued_leaves_as_one_buffer_in_order():
    box = Outbox(max_bytes=100, max_messages=10)
    for chunk in (b"a", b"bc", b"def"):
        assert box.push(chunk)
    assert (len(box), box.pending_bytes) == (3, 6)
    assert box.take() == b"abcdef"
    assert not box and box.pending_bytes == 0


def test_push_past_the_byte_bound_is_refused_and_flagged():
    box = Outbox(max_bytes=10, max_messages=10)
    assert box.push(b"x" * 8)
    assert not box.push(b"yyy")
    assert box.overflowed
    assert box.take() == b"x" * 8, (
        "what was accepted is kept; what was refused was never queued"
    )


def test_push_past_the_message_bound_is_refused():
    box = Outbox(max_bytes=1000, max_messages=2)
    assert box.push(b"1") and box.push(b"2")
    assert not box.push(b"3")


def test_an_empty_outbox_takes_one_message_larger_than_the_bound():
    """A 4 MiB echo must not count as a slow consumer just because it is big."""
    box = Outbox(max_bytes=10, max_messages=10)
    assert box.push(b"x" * 100)
    assert not box.push(b"y")
    assert box.take() == b"x" * 100


def test_a_close_frame_goes_in_even_when_full():
    box = Outbox(max_bytes=4, max_messages=1)
    box.push(b"full")
    box.push_control(b"\x88\x02\x03\xf0")
    assert box.take() == b"full\x88\x02\x03\xf0"


@given(
    st.lists(st.binary(max_size=50), max_size=40),
    st.integers(1, 500),
    st.integers(1, 20),
)
def test_bounds_always_hold_and_accepted_data_is_never_lost(
    chunks, max_bytes, max_messages
):
    box = Outbox(max_bytes, max_messages)
    accepted = [chunk for chunk in chunks if box.push(chunk)]
    assert len(box) <= max_messages
    assert box.pending_bytes <= max_bytes or len(box) == 1
    assert box.take() == b"".join(accepted)


def test_take_with_a_limit_hands_over_whole_chunks_up_to_it_and_keeps_the_rest():
    box = Outbox(max_bytes=100, max_messages=10)
    for chunk in (b"aa", b"bbb", b"cccc", b"d"):
        box.push(chunk)
    assert box.take(6) == b"aabbb", "cccc would pass the limit: it waits"
    assert (len(box), box.pending_bytes) == (2, 5)
    assert box.take(6) == b"ccccd"
    assert not box and box.pending_bytes == 0


def test_take_with_a_limit_below_the_first_chunk_hands_over_that_chunk_alone():
    box = Outbox(max_bytes=100, max_messages=10)
    first = b"x" * 10
    box.push(first)
    box.push(b"y")
    assert box.take(4) is first, "the queued object itself, not a copy"
    assert box.take(4) == b"y"


@given(st.lists(st.binary(min_size=1, max_size=50), max_size=40), st.integers(0, 120))
def test_limited_takes_give_back_everything_in_order_within_the_limit(chunks, limit):
    box = Outbox(max_bytes=10**6, max_messages=10**6)
    for chunk in chunks:
        box.push(chunk)
    taken = []
    while box:
        data = box.take(limit)
        assert len(data) <= max(limit, max(map(len, chunks)))
        taken.append(data)
    assert b"".join(taken) == b"".join(chunks)
    assert box.pending_bytes == 0
