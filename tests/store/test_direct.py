"""Direct rooms in the store: one per pair however it is asked for, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from rawws.chat.doors import direct_name
from rawws.store import NewMessage, SqlStore
from rawws.store.base import Membership, RoomView

HASH = "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"


async def users(store: SqlStore, *names: str) -> None:
    for name in names:
        await store.create_user(name, HASH)


async def test_a_direct_room_is_made_once_with_both_as_members(store: SqlStore) -> None:
    await users(store, "Ann", "bob", "cy")
    room = direct_name("ann", "bob")
    first = await store.open_direct(room, "Ann", "bob")
    assert first == Membership(room, "direct", "member", 0)
    await store.append_messages([NewMessage(room, "Ann", "hi", 1.0)])
    again = await store.open_direct(room, "bob", "ANN")  # the other side, later
    assert again == Membership(room, "direct", "member", 0)  # not remade: since_id kept
    assert await store.last_message_id(room) == 1  # the message is still there
    assert await store.member_roles(room) == {"Ann": "member", "bob": "member"}
    assert await store.membership(room, "cy") is None


async def test_both_sides_at_once_make_one_room(store: SqlStore) -> None:
    """Concurrent ``dm`` from both users: the primary key lets one transaction make the room,
    the other reads it; both get a membership of the same room, and it has two members."""
    await users(store, "ann", "bob")
    for round_ in range(5):
        a, b = f"a{round_}", f"b{round_}"
        await users(store, a, b)
        room = direct_name(a, b)
        got = await asyncio.gather(
            *(store.open_direct(room, a, b) for _ in range(3)),
            *(store.open_direct(room, b, a) for _ in range(3)),
        )
        assert {m.room for m in got} == {room}
        assert all(m.kind == "direct" and m.role == "member" for m in got)
        assert await store.member_roles(room) == {a: "member", b: "member"}


async def test_rooms_lists_a_direct_room_to_its_two_with_the_other_user(
    store: SqlStore,
) -> None:
    await users(store, "ann", "Bob", "cy")
    room = direct_name("ann", "bob")
    await store.open_direct(room, "ann", "bob")
    await store.create_room("plaza", "public", "cy")
    assert await store.visible_rooms("ann") == [
        RoomView("plaza", "public", None),
        RoomView(room, "direct", "member", "Bob", 0, 0),
    ]
    assert await store.visible_rooms("BOB") == [
        RoomView("plaza", "public", None),
        RoomView(room, "direct", "member", "ann", 0, 0),
    ]
    assert await store.visible_rooms("cy") == [
        RoomView("plaza", "public", "owner", None, 0, 0)
    ]
