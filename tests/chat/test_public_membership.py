"""A public room's membership in its stream: the first ``join`` stores ``joined``, ``leave``
with ``for_good`` stores ``left``, and a user reads the room only while a member.

Driven through the chat service on SQLite and the real PostgreSQL (``tests.chat.test_doors``'s
node). The invariant of issue 21 for public rooms: a user who is not a member when a
message is stored never receives it, live, in a ``since`` replay or in ``history``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import sqlalchemy as sa

from rawws.chat import wire as chat
from rawws.store import open_store, sqlite_url
from rawws.store.base import JOINED, MEMBER, PUBLIC, Membership
from rawws.store.schema import SCHEMA_VERSION, messages, room_members, schema_version
from tests.chat.test_doors import Node, kind_of, opened, settle
from tests.chat.test_doors import store_url as store_url  # the fixture


def ids_of(frames: list[dict], room: str, *types: str) -> list[int]:
    return [f["id"] for f in frames if f["type"] in types and f.get("room") == room]


async def test_a_first_join_stores_joined_and_reading_starts_there(
    store_url: str,
) -> None:
    store = await opened(store_url)
    node = Node(store)
    try:
        ann = node.connect("ann")
        assert (await node.answer(ann, type="join", room="plaza"))["type"] == "joined"
        await node.answer(ann, type="say", room="plaza", text="before bob", ref="a")
        bob = node.connect("bob")
        joined = await node.answer(bob, type="join", room="plaza", since=0)
        assert joined["last_id"] == 3  # ann's joined (1), her say (2), bob's joined (3)
        events = [f for f in ann.frames if f["type"] == "member"]
        assert [(e["event"], e["user"], e["by"], e["id"]) for e in events] == [
            ("joined", "bob", "bob", 3)
        ]
        # bob's since=0 replay and his history start at his join: nothing before it
        assert ids_of(bob.frames, "plaza", "message", "member") == []
        history = await node.answer(bob, type="history", room="plaza")
        assert history["messages"] == []
        await node.answer(ann, type="say", room="plaza", text="after bob", ref="b")
        assert ids_of(bob.frames, "plaza", "message") == [4]
        # a second join (another connection) stores nothing more
        again = node.connect("bob")
        rejoined = await node.answer(again, type="join", room="plaza", since=0)
        assert rejoined["last_id"] == 4
        assert ids_of(again.frames, "plaza", "message", "member") == [4]
        assert await store.last_message_id("plaza") == 4
        # ann's own history shows bob's join in its place
        mine = await node.answer(ann, type="history", room="plaza")
        assert [m["type"] for m in mine["messages"]] == [
            "message",
            "member",
            "message",
        ]
    finally:
        await node.handler.close()
        await store.close()


async def test_leave_for_good_ends_the_membership_on_every_connection(
    store_url: str,
) -> None:
    store = await opened(store_url)
    node = Node(store)
    try:
        ann, bob, bob2 = node.connect("ann"), node.connect("bob"), node.connect("bob")
        for peer in (ann, bob, bob2):
            await node.answer(peer, type="join", room="plaza")
        left = await node.answer(bob, type="leave", room="plaza", for_good=True)
        assert left == {"type": "left", "room": "plaza", "id": 3}
        removed = [f for f in bob2.frames if f["type"] == "removed"]
        assert removed == [
            {"type": "removed", "room": "plaza", "id": 3, "reason": "left", "by": "bob"}
        ]
        events = [(f["event"], f["user"]) for f in ann.frames if f["type"] == "member"]
        assert events == [("joined", "bob"), ("left", "bob")]
        assert await store.membership("plaza", "bob") is None
        await node.answer(ann, type="say", room="plaza", text="while away", ref="w")
        for peer in (bob, bob2):
            assert ids_of(peer.frames, "plaza", "message") == []
        # back: a new joined event, and nothing said while away, by since or history
        back = await node.answer(bob, type="join", room="plaza", since=0)
        assert back["last_id"] == 5
        assert ids_of(bob.frames, "plaza", "message") == []
        assert (await node.answer(bob, type="history", room="plaza"))["messages"] == []
        found = await store.membership("plaza", "bob")
        assert found is not None and found.since_id == 5
        # a plain leave stores nothing
        before = await store.last_message_id("plaza")
        assert await node.answer(bob, type="leave", room="plaza") == {
            "type": "left",
            "room": "plaza",
        }
        assert await store.last_message_id("plaza") == before
    finally:
        await node.handler.close()
        await store.close()


async def test_leave_for_good_of_private_and_direct_rooms(store_url: str) -> None:
    store = await opened(store_url)
    node = Node(store)
    try:
        ann, bob = node.connect("ann"), node.connect("bob")
        den = (await node.answer(ann, type="create", room="den", kind="private"))[
            "room"
        ]
        await node.answer(ann, type="invite", room=den, user="bob")
        for peer in (ann, bob):
            await node.answer(peer, type="join", room=den)
        owner = await node.answer(ann, type="leave", room=den, for_good=True, ref="o")
        assert (owner["type"], owner["code"], owner["ref"]) == (
            "error",
            chat.FORBIDDEN,
            "o",
        )
        assert (await node.answer(bob, type="leave", room=den, for_good=True))[
            "type"
        ] == "left"
        # out for good: the private room is gone for bob until a new invitation
        assert kind_of(await node.answer(bob, type="join", room=den)) == (
            chat.NO_SUCH_ROOM
        )
        await node.answer(ann, type="invite", room=den, user="bob")
        assert kind_of(await node.answer(bob, type="join", room=den)) == "joined"
        direct = (await node.answer(ann, type="dm", user="bob"))["room"]
        await node.answer(ann, type="join", room=direct)
        refused = await node.answer(ann, type="leave", room=direct, for_good=True)
        assert kind_of(refused) == chat.BAD_ROOM
        assert (await store.membership(direct, "ann")) is not None
        bad = await node.answer(ann, type="leave", room=den, for_good="yes")
        assert kind_of(bad) == chat.BAD_FIELD
    finally:
        await node.handler.close()
        await store.close()


async def test_first_joins_at_once_store_one_event(store_url: str) -> None:
    """Eight first joins of one user at the same moment: one ``joined`` event, one membership."""
    store = await opened(store_url)
    try:
        results = await asyncio.gather(
            *(store.join_public("plaza", "bob", 1.0) for _ in range(8))
        )
        events = [event for _, event in results if event is not None]
        assert len(events) == 1 and events[0].kind == JOINED
        assert {membership for membership, _ in results} == {
            Membership("plaza", PUBLIC, MEMBER, events[0].id)
        }
        assert await store.last_message_id("plaza") == 1
    finally:
        await store.close()


async def test_version_8_makes_writers_of_public_rooms_members(tmp_path: Path) -> None:
    """A version-7 database: those who wrote in a public room read it whole after the upgrade;
    a user who never wrote there joins anew (and reads from then)."""
    store = await opened(tmp_path)
    for user in ("ann", "bob"):
        await store.join_public("plaza", user, 1.0)
    await store.join_public("quiet", "cy", 1.0)
    async with store.engine.begin() as conn:
        await conn.execute(
            messages.insert().values(
                room="plaza", id=3, user="Ann", text="hi", ts=1.0, kind="say"
            )
        )
        await conn.execute(room_members.delete())  # as version 7 left public rooms
        await conn.execute(schema_version.update().values(version=7))
    await store.close()
    store = await open_store(sqlite_url(tmp_path))
    try:
        assert await store.schema_version() == SCHEMA_VERSION  # on through version 9
        found = await store.membership("plaza", "ann")
        assert found == Membership("plaza", PUBLIC, MEMBER, 0)
        for room, user in (("plaza", "bob"), ("quiet", "cy")):
            assert await store.membership(room, user) is None
        async with store.engine.connect() as conn:
            count = await conn.execute(
                sa.select(sa.func.count()).select_from(room_members)
            )
            assert count.scalar_one() == 1
    finally:
        await store.close()


async def test_a_say_right_after_a_first_join_is_stored_after_the_joined_event(
    store_url: str,
) -> None:
    """``join`` and ``say`` in one go (as ``rawws send`` does): the say waits for the stored
    membership, so it is never stored by a non-member nor before the join; a banned
    user's is refused and stores nothing."""
    store = await opened(store_url)
    node = Node(store)
    try:
        ann = node.connect("ann")
        for n, room in enumerate(("plaza", "agora")):
            node.handler.on_message(ann, json.dumps({"type": "join", "room": room}))
            for k in range(3):
                frame = {"type": "say", "room": room, "text": f"t{k}", "ref": f"{n}{k}"}
                node.handler.on_message(ann, json.dumps(frame))
        await settle(node.handler)
        for room in ("plaza", "agora"):
            stored = await store.messages_after(room, 0, 10)
            assert [(m.id, m.kind, m.text) for m in stored] == [
                (1, "joined", ""),
                (2, "say", "t0"),
                (3, "say", "t1"),
                (4, "say", "t2"),
            ]
        acks = [(f["ref"], f["id"]) for f in ann.frames if f["type"] == "ack"]
        assert sorted(acks) == [(f"{n}{k}", k + 2) for n in range(2) for k in range(3)]
        # banned from plaza: the join is refused, and so is the say sent with it
        await node.answer(ann, type="create", room="forum", kind="public")
        bob = node.connect("bob")
        await node.answer(bob, type="join", room="forum")
        await node.answer(bob, type="leave", room="forum")
        await node.answer(ann, type="ban", room="forum", user="bob")
        before, last = len(bob.frames), await store.last_message_id("forum")
        node.handler.on_message(bob, json.dumps({"type": "join", "room": "forum"}))
        say = {"type": "say", "room": "forum", "text": "let me in", "ref": "b"}
        node.handler.on_message(bob, json.dumps(say))
        await settle(node.handler)
        errors = [
            (f["code"], f.get("ref"))
            for f in bob.frames[before:]
            if f["type"] == "error"
        ]
        assert sorted(errors, key=str) == sorted(
            [(chat.NOT_JOINED, "b"), ("banned", None)], key=str
        )
        assert await store.last_message_id("forum") == last
    finally:
        await node.handler.close()
        await store.close()
