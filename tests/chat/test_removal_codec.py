"""The bus events of the server API's removals (``RoomDeleted``, ``Disconnected``) and of commands
forwarded to another node's session (``Commands``): every one round-trips, and anything off their
shape or bounds decodes to nothing."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from rawws.chat.codec import (
    MAX_USER_CHARS,
    Commands,
    Disconnected,
    RoomDeleted,
    decode_event,
    encode_event,
)
from rawws.chat.wire import MAX_ROOM_CHARS

NODES = st.text(max_size=40)
ROOMS = st.text(min_size=1, max_size=MAX_ROOM_CHARS)
USERS = st.text(min_size=1, max_size=MAX_USER_CHARS)


@given(node=NODES, room=ROOMS, by=USERS)
def test_a_room_deletion_round_trips(node: str, room: str, by: str) -> None:
    event = RoomDeleted(node, room, by)
    assert decode_event(encode_event(event)) == event


@given(node=NODES, user=USERS)
def test_a_disconnect_round_trips(node: str, user: str) -> None:
    event = Disconnected(node, user)
    assert decode_event(encode_event(event)) == event


@given(
    field=st.sampled_from(["r", "u", "extra"]),
    value=st.one_of(
        st.none(),
        st.integers(),
        st.just(""),
        st.text(min_size=MAX_USER_CHARS + 1, max_size=MAX_USER_CHARS + 5),
        st.lists(st.text(), max_size=2),
    ),
)
def test_a_deletion_off_its_shape_is_refused(field: str, value: object) -> None:
    body = json.loads(encode_event(RoomDeleted("n", "lobby", "app")))
    body[field] = value
    assert decode_event(json.dumps(body)) is None


@given(
    field=st.sampled_from(["u", "r"]),
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.just(""),
        st.text(min_size=MAX_USER_CHARS + 1, max_size=MAX_USER_CHARS + 5),
    ),
)
def test_a_disconnect_off_its_shape_is_refused(field: str, value: object) -> None:
    body = json.loads(encode_event(Disconnected("n", "ada")))
    body[field] = value
    assert decode_event(json.dumps(body)) is None


@given(
    node=NODES,
    session=st.text(min_size=1, max_size=64),
    user=USERS,
    texts=st.lists(st.text(max_size=200), min_size=1, max_size=32),
)
def test_forwarded_commands_round_trip(
    node: str, session: str, user: str, texts: list[str]
) -> None:
    event = Commands(node, session, user, tuple(texts))
    assert decode_event(encode_event(event)) == event


@given(
    field=st.sampled_from(["i", "u", "t"]),
    value=st.one_of(
        st.none(),
        st.just(""),
        st.just([]),
        st.integers(),
        st.text(min_size=65, max_size=70),
        st.lists(st.just("{}"), min_size=33, max_size=34),
        st.lists(st.integers(), min_size=1, max_size=2),
        st.just(["x" * (64 * 1024 + 1)]),
    ),
)
def test_forwarded_commands_off_their_shape_or_bounds_are_refused(
    field: str, value: object
) -> None:
    body = json.loads(encode_event(Commands("n", "tag.s", "ann", ("{}",))))
    body[field] = value
    assert decode_event(json.dumps(body)) is None
