"""The server API's rooms in the store (``rawws.store.room_removal``), on SQLite and PostgreSQL:
which rooms ``list_rooms`` gives for any key's patterns and prefix, and what a removal takes."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawws.apps.keys import room_matches
from rawws.store import NewMessage, SqlStore
from rawws.store.base import DIRECT, INVITED, MEMBER, PRIVATE, PUBLIC, MemberEvent

worlds = itertools.count(1)
# Names with the characters LIKE treats specially ('_', and '-' next to them) and '.', '~'.
PARTS = st.text(alphabet="ab_-.~%", min_size=1, max_size=4)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    names=st.lists(PARTS, min_size=1, max_size=8, unique=True),
    patterns=st.lists(
        st.one_of(PARTS, PARTS.map(lambda p: p + "*"), st.just("*")), max_size=3
    ),
    prefix=st.one_of(st.just(""), PARTS),
)
async def test_list_rooms_gives_exactly_the_rooms_a_key_reaches(
    store: SqlStore, names: list[str], patterns: list[str], prefix: str
) -> None:
    world = f"w{next(worlds)}z"  # each example its own names in the shared database
    made: dict[str, str] = {}
    for i, name in enumerate(names):
        room = world + name
        kind = (PUBLIC, PRIVATE, DIRECT)[i % 3]
        assert await store.create_owned_room(room, kind, None)
        made[room] = kind
    keyed = tuple(world + p for p in patterns)
    listed = await store.list_rooms(keyed, world + prefix, 1000)
    expected = sorted(
        room
        for room, kind in made.items()
        if kind != DIRECT
        and room.startswith(world + prefix)
        and (not keyed or room_matches(keyed, room))
    )
    assert [r.room for r in listed] == expected
    assert all(r.kind == made[r.room] and r.owner is None for r in listed)


async def test_a_removed_room_leaves_nothing_and_its_name_starts_again_at_one(
    store: SqlStore,
) -> None:
    await store.create_user("ada", "x")
    await store.create_user("bob", "x")
    assert await store.create_owned_room("den.abcd1234", PRIVATE, "ada")
    assert not await store.create_owned_room("den.abcd1234", PUBLIC, None)
    await store.apply_member_event(
        MemberEvent("den.abcd1234", INVITED, "app", "bob", "", 1.0, MEMBER)
    )
    await store.append_messages([NewMessage("den.abcd1234", "bob", "hi", 2.0)])
    assert (await store.list_rooms((), "den", 10))[0].owner == "ada"

    assert await store.remove_room("den.abcd1234")
    assert not await store.remove_room("den.abcd1234")  # once
    assert await store.room_info("den.abcd1234") is None
    assert await store.membership("den.abcd1234", "bob") is None
    assert await store.messages_after("den.abcd1234", 0, 10) == []
    assert await store.list_rooms((), "den", 10) == []
    assert await store.create_owned_room("den.abcd1234", PRIVATE, "bob")
    stored = await store.append_messages(
        [NewMessage("den.abcd1234", "bob", "again", 3.0)]
    )
    assert stored[0].id == 1
