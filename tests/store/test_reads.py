"""Read markers in the store (schema 9), on a real SQLite file and the real PostgreSQL.

The marker write must never move a marker back, whoever writes last (two nodes flush in
any order); ``unread`` counts only others' ``say`` rows in the range; ``visible_rooms``
gives each member room its marker in force and count in the one query; and a version-8
database gains the column with every membership kept.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from rawws.store import NewMessage, SqlStore, open_store
from rawws.store.base import JOINED, MemberEvent
from rawws.store.schema import SCHEMA_VERSION, room_members, schema_version

HASH = "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"


async def last_read(store: SqlStore, room: str, user: str) -> int:
    found = await store.membership(room, user)
    assert found is not None
    return found.last_read


async def members(store: SqlStore, room: str, *users: str) -> None:
    for user in users:
        await store.create_user(user, HASH)
        await store.join_public(room, user, 1.0)


async def test_markers_only_move_forward_whoever_writes_last(
    store: SqlStore, store_url: str
) -> None:
    await members(store, "plaza", "Ann", "bob")
    await store.create_room("den.aaaaaaaa", "private", "Ann")
    await store.save_read_markers(
        [("plaza", "ann", 9), ("den.aaaaaaaa", "ann", 4), ("plaza", "bob", 3)]
    )
    assert await last_read(store, "plaza", "ann") == 9
    assert await last_read(store, "den.aaaaaaaa", "Ann") == 4
    assert await last_read(store, "plaza", "bob") == 3
    await store.save_read_markers([("plaza", "ann", 5), ("plaza", "bob", 8)])
    assert await last_read(store, "plaza", "ann") == 9  # older: kept
    assert await last_read(store, "plaza", "bob") == 8
    # no membership: nothing is written (nor made)
    await store.save_read_markers([("plaza", "cy", 5), ("nowhere", "ann", 1)])
    assert await store.membership("plaza", "cy") is None
    # two nodes on one database, flushing at once in either order
    other = await open_store(store_url)
    try:
        for _ in range(5):
            await asyncio.gather(
                store.save_read_markers([("plaza", "bob", 20)]),
                other.save_read_markers([("plaza", "bob", 12)]),
            )
        assert await last_read(store, "plaza", "bob") == 20
    finally:
        await other.close()


async def test_unread_counts_others_says_in_the_range(store: SqlStore) -> None:
    await members(store, "plaza", "Ann", "bob")  # joined events 1, 2
    said = [("bob", "b1"), ("ANN", "mine"), ("bob", "b2"), ("Bob", "b3")]  # 3..6
    await store.append_messages([NewMessage("plaza", u, t, 2.0) for u, t in said])
    event = MemberEvent("plaza", "muted", "bob", "Ann", "99.0", 3.0, "member", 99.0)
    await store.apply_member_event(event)  # 7: not a say
    await store.append_messages([NewMessage("plaza", "bob", "b4", 4.0)])  # 8
    assert await store.unread("plaza", "ann", 0, 8) == 4  # b1 b2 b3 b4, not her own
    assert await store.unread("plaza", "Ann", 3, 6) == 2  # b2 b3
    assert await store.unread("plaza", "ann", 6, 7) == 0  # the mute
    assert await store.unread("plaza", "ann", 8, 8) == 0
    assert await store.unread("plaza", "bob", 2, 8) == 1  # ann's "mine"
    assert await store.unread("plaza", "bob", 0, 8) == 1  # her joined is no say
    assert (await store.messages_after("plaza", 0, 1))[0].kind == JOINED
    await store.change_message("plaza", 3, "bob", None, 5.0)  # 9: b1 deleted
    assert (
        await store.unread("plaza", "ann", 0, 9) == 3
    )  # a deleted message is not unread


async def test_visible_rooms_give_each_member_room_its_marker_and_count(
    store: SqlStore,
) -> None:
    await members(store, "plaza", "Ann", "bob")  # ann since 1, bob since 2
    await store.append_messages(
        [NewMessage("plaza", u, t, 2.0) for u, t in [("bob", "x"), ("bob", "y")]]
    )  # 3, 4
    await store.create_room("den.aaaaaaaa", "private", "bob")  # ann is no member
    views = {v.room: v for v in await store.visible_rooms("ann")}
    assert set(views) == {"plaza"}
    assert (views["plaza"].last_read, views["plaza"].unread) == (1, 2)
    await store.save_read_markers([("plaza", "ann", 3)])
    view = (await store.visible_rooms("ann"))[0]
    assert (view.last_read, view.unread) == (3, 1)
    bobs = {v.room: (v.last_read, v.unread) for v in await store.visible_rooms("bob")}
    assert bobs == {"den.aaaaaaaa": (0, 0), "plaza": (2, 0)}  # since_id until a read
    await store.create_user("cy", HASH)
    seen = [
        (v.room, v.role, v.last_read, v.unread) for v in await store.visible_rooms("cy")
    ]
    assert seen == [("plaza", None, None, None)]  # no member: no marker, no count


async def test_a_version_8_database_gains_markers_and_keeps_its_members(
    store_url: str,
) -> None:
    store = await open_store(store_url)
    await members(store, "plaza", "Ann")
    async with store.engine.begin() as conn:  # as version 8 left room_members
        await conn.execute(sa.text("ALTER TABLE room_members DROP COLUMN last_read"))
        await conn.execute(schema_version.update().values(version=8))
    await store.close()
    store = await open_store(store_url)
    try:
        assert await store.schema_version() == SCHEMA_VERSION == 12
        found = await store.membership("plaza", "ann")
        assert found is not None and (found.since_id, found.last_read) == (1, 0)
        await store.save_read_markers([("plaza", "ann", 1)])
        async with store.engine.connect() as conn:
            rows = (await conn.execute(sa.select(room_members.c.last_read))).all()
        assert rows == [(1,)]
    finally:
        await store.close()
