"""The per-room sequencer and the chat's bus codec, with no I/O.

The property: whatever order messages arrive in, with drops and duplicates, and
however small the hold, a node that reads its gaps from the store (as the feed
does) delivers exactly ``base+1 … N``, each once, in order.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawws.chat.codec import Heads, Posted, Stopped, decode_event, encode_event
from rawws.chat.sequencer import RoomSequencer
from rawws.store import StoredMessage

PAGE = 7  # a small store page, so that fetches take several rounds


def drain(
    sequencer: RoomSequencer[int], store: list[int], delivered: list[int]
) -> None:
    """What the feed does when ``wants_fetch``: read pages after ``fetch_after`` from the store."""
    while sequencer.wants_fetch:
        after = sequencer.fetch_after
        page = [i for i in store if i > after][:PAGE]
        if not page:
            break
        delivered.extend(sequencer.fetched([(i, i) for i in page]))


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[int, int, list[int], int, list[int]]:
    total = draw(st.integers(0, 120))
    base = draw(st.integers(0, total))
    ids = list(range(1, total + 1))
    kept = [
        i for i in ids if not draw(st.booleans()) or draw(st.integers(0, 3)) > 0
    ]  # ~1/8 dropped
    duplicated = (
        kept + draw(st.lists(st.sampled_from(ids), max_size=30)) if ids else kept
    )
    order = draw(st.permutations(duplicated))
    hold = draw(st.integers(1, 16))
    start_after = draw(
        st.integers(0, len(order))
    )  # messages that arrive before the base is known
    return total, base, order, hold, [start_after]


@settings(max_examples=400, deadline=None)
@given(arrivals(), st.integers(0, 5))
def test_any_arrival_order_with_drops_and_duplicates_delivers_each_id_once_in_order(
    case, fetch_every
) -> None:
    total, base, order, hold, (start_after,) = case
    store = list(range(1, total + 1))  # everything is committed before it is published
    sequencer: RoomSequencer[int] = RoomSequencer(hold)
    delivered: list[int] = []
    for step, message_id in enumerate(order):
        if step == start_after:
            delivered.extend(sequencer.start(base))
        delivered.extend(sequencer.receive(message_id, message_id))
        assert sequencer.held <= hold
        if fetch_every and step % fetch_every == 0:
            drain(sequencer, store, delivered)
    if not sequencer.started:
        delivered.extend(sequencer.start(base))
    sequencer.note_newest(total)  # the heartbeat, or the catch-up after a bus outage
    drain(sequencer, store, delivered)
    assert delivered == list(range(base + 1, total + 1))
    assert sequencer.held == 0


def test_in_order_arrival_needs_no_store() -> None:
    sequencer: RoomSequencer[str] = RoomSequencer()
    assert sequencer.start(3) == []
    assert sequencer.receive(4, "d") == ["d"]
    assert sequencer.receive(5, "e") == ["e"]
    assert not sequencer.wants_fetch


def test_a_message_ahead_of_a_gap_is_held_and_the_gap_is_asked_for() -> None:
    sequencer: RoomSequencer[str] = RoomSequencer()
    sequencer.start(0)
    assert sequencer.receive(2, "b") == []
    assert sequencer.wants_fetch and sequencer.fetch_after == 0
    assert sequencer.fetched([(1, "a"), (2, "b")]) == ["a", "b"]
    assert sequencer.receive(2, "b") == []  # the live copy, late: not twice
    assert not sequencer.wants_fetch


def test_a_full_hold_keeps_the_messages_closest_to_the_gap() -> None:
    sequencer: RoomSequencer[int] = RoomSequencer(hold_limit=2)
    sequencer.start(0)
    for message_id in (5, 4, 3):
        sequencer.receive(message_id, message_id)
    assert sequencer.held == 2 and sequencer.overflowed == 1
    assert sequencer.receive(1, 1) == [1]
    assert sequencer.fetched([(2, 2)]) == [2, 3, 4]
    assert sequencer.wants_fetch  # 5 was dropped from the hold: it comes from the store
    assert sequencer.fetched([(5, 5)]) == [5]


def test_a_heartbeat_finds_a_lost_tail() -> None:
    sequencer: RoomSequencer[int] = RoomSequencer()
    sequencer.start(10)
    assert not sequencer.wants_fetch
    sequencer.note_newest(12)
    assert sequencer.wants_fetch and sequencer.fetch_after == 10


def test_hold_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RoomSequencer(0)


# -- the codec --------------------------------------------------------------------------

rooms = st.text(min_size=1, max_size=32)
messages = st.builds(
    StoredMessage,
    room=rooms,
    id=st.integers(1, 2**63 - 1),
    user=st.text(max_size=64),
    text=st.text(max_size=200),
    ts=st.floats(allow_nan=False, allow_infinity=False),
)


@given(st.text(max_size=40), messages)
def test_posted_round_trips(node: str, message: StoredMessage) -> None:
    assert decode_event(encode_event(Posted(node, message))) == Posted(node, message)


@given(
    st.text(max_size=40), st.dictionaries(rooms, st.integers(1, 2**63 - 1), max_size=20)
)
def test_heads_round_trip(node: str, newest: dict[str, int]) -> None:
    assert decode_event(encode_event(Heads(node, newest))) == Heads(node, newest)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(st.binary(max_size=200))
def test_random_bytes_are_never_an_event_nor_a_crash(data: bytes) -> None:
    event = decode_event(data)
    assert event is None or isinstance(event, Posted | Heads | Stopped)


@given(json_values)
def test_random_json_is_not_an_event(value: object) -> None:
    assert decode_event(json.dumps(value)) is None


@pytest.mark.parametrize(
    "body",
    [
        {
            "v": 1,
            "k": "m",
            "n": "a",
            "r": "lobby",
            "i": 0,
            "u": "x",
            "t": "y",
            "s": 1.0,
        },  # id 0
        {
            "v": 1,
            "k": "m",
            "n": "a",
            "r": "lobby",
            "i": True,
            "u": "x",
            "t": "y",
            "s": 1.0,
        },  # bool id
        {
            "v": 1,
            "k": "m",
            "n": "a",
            "r": "lobby",
            "i": 2**63,
            "u": "x",
            "t": "y",
            "s": 1.0,
        },  # beyond BIGINT
        {
            "v": 1,
            "k": "m",
            "n": "a",
            "r": "",
            "i": 1,
            "u": "x",
            "t": "y",
            "s": 1.0,
        },  # empty room
        {
            "v": 1,
            "k": "m",
            "n": "a",
            "r": "r" * 33,
            "i": 1,
            "u": "x",
            "t": "y",
            "s": 1.0,
        },
        {"v": 1, "k": "m", "n": "a", "r": "lobby", "i": 1, "u": 5, "t": "y", "s": 1.0},
        {
            "v": 1,
            "k": "m",
            "n": "a",
            "r": "lobby",
            "i": 1,
            "u": "x",
            "t": "y",
            "s": "now",
        },
        {
            "v": 2,
            "k": "m",
            "n": "a",
            "r": "lobby",
            "i": 1,
            "u": "x",
            "t": "y",
            "s": 1.0,
        },  # other version
        {"v": 1, "k": "h", "n": "a", "h": {"lobby": -1}},
        {"v": 1, "k": "h", "n": "a", "h": ["lobby"]},
        {"v": 1, "k": "x", "n": "a"},
        {
            "v": 1,
            "k": "m",
            "r": "lobby",
            "i": 1,
            "u": "x",
            "t": "y",
            "s": 1.0,
        },  # no node
    ],
)
def test_wrong_types_and_bounds_are_not_events(body: dict[str, object]) -> None:
    assert decode_event(json.dumps(body)) is None


@given(
    st.text(max_size=40),
    st.text(min_size=1, max_size=64),
    st.floats(min_value=0, allow_nan=False, allow_infinity=False),
    st.booleans(),
)
def test_stopped_round_trips(
    node: str, user: str, not_before: float, disabled: bool
) -> None:
    event = Stopped(node, user, not_before, disabled)
    assert decode_event(encode_event(event)) == event


@pytest.mark.parametrize(
    "fields",
    [
        {"u": "", "b": 1.0, "d": False},  # no user
        {"u": "x" * 65, "b": 1.0, "d": False},  # longer than a name's key
        {"u": "ada", "b": "1", "d": False},  # a stamp as text
        {"u": "ada", "b": True, "d": False},  # a bool is no stamp
        {"u": "ada", "b": -1.0, "d": False},
        {
            "u": "ada",
            "b": float("inf"),
            "d": False,
        },  # JSON's Infinity, which json reads
        {"u": "ada", "b": 1.0, "d": 1},  # disabled must be a bool
        {"u": "ada", "b": 1.0},
    ],
)
def test_a_malformed_stop_is_refused(fields: dict[str, object]) -> None:
    assert decode_event(json.dumps({"v": 1, "k": "x", "n": "a", **fields})) is None
