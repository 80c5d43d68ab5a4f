"""Direct rooms through real servers: ``dm`` from both sides at once, the leak on the wire, and a
direct room opened on one node told to the other user and found through ``rooms`` on another.

One server on SQLite and on PostgreSQL (``db_url``); then two nodes on one PostgreSQL and one
real ``redis-server``.
"""

from __future__ import annotations

import asyncio
import json

from rawws.chat.doors import direct_name
from tests.chat.test_chat import start_chat as start_chat  # a fixture
from tests.chat.test_cluster import no_rate_limit as no_rate_limit  # a fixture
from tests.chat.test_cluster import start_node as start_node  # a fixture
from tests.e2e.test_private_rooms import COMMANDS, answer
from tests.support.chat_client import close_quietly, connect_chat, new_users


async def test_dm_from_both_sides_at_once_is_one_room_only_they_see(
    start_chat, no_rate_limit
) -> None:
    server = await start_chat()
    tokens = await new_users(server, "ann", "bob", "cat")
    ann, bob, cat = [
        await connect_chat(server, tokens[u], u) for u in ("ann", "bob", "cat")
    ]
    try:
        for client in (ann, bob, cat):
            await client.join("lobby")
        await asyncio.gather(
            ann.send(type="dm", user="bob", ref="d"),
            bob.send(type="dm", user="ANN", ref="d"),
        )
        room = direct_name("ann", "bob")
        mine = await ann.wait_frame("direct", ref="d")
        theirs = await bob.wait_frame("direct", ref="d")
        assert (mine["room"], mine["user"]) == (room, "bob")
        assert (theirs["room"], theirs["user"]) == (room, "ann")
        await ann.join(room)
        await bob.join(room)
        await ann.say(room, "psst", "p")
        await bob.wait_message_id(room, 1)
        assert [m["text"] for m in bob.messages(room)] == ["psst"]

        never = direct_name("bob", "cat")  # a pair that never spoke
        heard: dict[str, list[str]] = {room: [], never: []}
        for name in (room, never):
            for frame in COMMANDS:
                for got in await answer(cat, **frame, room=name):
                    heard[name].append(json.dumps(got).replace(name, "ROOM"))
        assert heard[room] == heard[never]
        assert cat.messages(room) == []
        # joined above, third (lobby's ids: ann's, bob's, cat's joined events; no say)
        assert (await answer(cat, type="rooms"))[0]["rooms"] == [
            {"room": "lobby", "kind": "public", "role": "member"}
            | {"last_read": 3, "unread": 0}
        ]
        listed = (await answer(bob, type="rooms"))[0]["rooms"]
        assert listed == [
            {"room": "lobby", "kind": "public", "role": "member"}
            | {"last_read": 2, "unread": 0},
            {"room": room, "kind": "direct", "role": "member", "user": "ann"}
            | {"last_read": 0, "unread": 1},  # ann's psst
        ]

        for frame, code in (
            ({"type": "dm", "user": "cat", "ref": "x"}, None),
            ({"type": "dm", "user": "Ann", "ref": "self"}, "bad_field"),
            ({"type": "dm", "user": "nobody", "ref": "no"}, "no_such_user"),
            (
                {"type": "create", "room": room, "kind": "public", "ref": "c"},
                "bad_room",
            ),
            ({"type": "invite", "room": room, "user": "cat", "ref": "i"}, "bad_room"),
        ):
            got = (await answer(ann, **frame))[0]
            assert got.get("code") == code and got["ref"] == frame["ref"], got
        await ann.say(room, "still here", "s")
        await ann.wait_ack("s")
    finally:
        await close_quietly(ann, bob, cat)


async def test_a_direct_room_opened_on_one_node_is_told_and_found_on_another(
    start_node,
) -> None:
    a, b = await start_node(), await start_node()
    tokens = await new_users(a, "ann", "bob")
    ann = await connect_chat(a, tokens["ann"], "ann")
    bob = await connect_chat(b, tokens["bob"], "bob")
    try:
        await bob.join("lobby")
        await ann.send(type="dm", user="bob", ref="d")
        room = (await ann.wait_frame("direct", ref="d"))["room"]
        told = await bob.wait_frame("direct", room=room)  # through the bus, from node a
        assert told == {"type": "direct", "room": room, "user": "ann"}
        await ann.join(room)
        listed = (await answer(bob, type="rooms"))[0]["rooms"]
        assert listed == [
            {"room": "lobby", "kind": "public", "role": "member"}
            | {"last_read": 1, "unread": 0},
            {"room": room, "kind": "direct", "role": "member", "user": "ann"}
            | {"last_read": 0, "unread": 0},
        ]
        await bob.join(room, since=0)
        await ann.say(room, "hello from a", "h")
        await bob.wait_message_id(room, 1)
        await bob.say(room, "hello from b", "r")
        await ann.wait_message_id(room, 2)
        await bob.wait_message_id(room, 2)
        assert [m["text"] for m in ann.messages(room)] == [
            "hello from a",
            "hello from b",
        ]
        assert [m["text"] for m in bob.messages(room)] == [
            "hello from a",
            "hello from b",
        ]
    finally:
        await close_quietly(ann, bob)
