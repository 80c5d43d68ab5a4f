"""Private rooms through real servers: the leak property on the wire, and an invitation across nodes.

One server on SQLite and on PostgreSQL (``db_url``); then two nodes on one PostgreSQL
and one real ``redis-server``, where the invitation is taken by one node and the
invitee comes in through the other.
"""

from __future__ import annotations

import json
from typing import Any

from tests.chat.test_chat import start_chat as start_chat  # a fixture
from tests.chat.test_cluster import no_rate_limit as no_rate_limit  # a fixture
from tests.chat.test_cluster import start_node as start_node  # a fixture
from tests.support.chat_client import (
    ChatClient,
    close_quietly,
    connect_chat,
    new_users,
)

NEVER = "den.zzzzzzzz"  # a private name no room has


async def answer(client: ChatClient, **frame: Any) -> list[dict]:
    """Every frame that came for ``frame``: its first answer, then whatever else came
    before a ``who lobby`` round trip (some answers need the store, so they come later)."""
    start = len(client.frames)
    await client.send(**frame)

    def answered() -> list[dict]:
        return [f for f in client.frames[start:] if f["type"] != "presence"]

    await client.wait_until(answered, what=f"an answer to {frame}")
    mark = len(client.frames)
    await client.send(type="who", room="lobby")
    await client.wait_frame("members", start=mark, room="lobby")
    end = next(
        i
        for i in range(mark, len(client.frames))
        if client.frames[i]["type"] == "members" and client.frames[i]["room"] == "lobby"
    )
    return [f for f in client.frames[start:end] if f["type"] != "presence"]


COMMANDS: list[dict[str, Any]] = [
    {"type": "join"},
    {"type": "join", "since": 0},
    {"type": "history"},
    {"type": "who"},
    {"type": "say", "text": "let me in", "ref": "s"},
    {"type": "leave"},
    {"type": "invite", "user": "cat", "ref": "i"},
    {"type": "invite", "user": "nobody", "ref": "n"},
]


async def test_a_non_member_hears_of_a_private_room_what_of_one_never_made(
    start_chat, no_rate_limit
) -> None:
    server = await start_chat()
    tokens = await new_users(server, "ann", "bob", "cat")
    ann, bob, cat = [
        await connect_chat(server, tokens[u], u) for u in ("ann", "bob", "cat")
    ]
    try:
        for client in (ann, bob, cat):
            await client.join("lobby")  # the round trips of ``answer`` are in the lobby
        await ann.send(type="create", room="den", kind="private", ref="c")
        den = (await ann.wait_frame("created", ref="c"))["room"]
        await ann.join(den)
        for n in range(3):
            await ann.say(den, f"before {n}", f"b{n}")
            await ann.wait_ack(f"b{n}")
        heard: dict[str, list[str]] = {den: [], NEVER: []}
        for room in (den, NEVER):
            for frame in COMMANDS:
                for got in await answer(cat, **frame, room=room):
                    heard[room].append(json.dumps(got).replace(room, "ROOM"))
        assert heard[den] == heard[NEVER]
        assert all('"no_such_room"' in h or '"not_joined"' in h for h in heard[den])
        listed = (await answer(cat, type="rooms"))[0]["rooms"]
        assert den not in {r["room"] for r in listed}
        assert cat.messages(den) == []
        # invited: bob reads only what is said from then on
        await ann.send(type="invite", room=den, user="bob", ref="i")
        await ann.wait_frame("invited", ref="i")
        await bob.wait_frame("invitation", room=den)
        await ann.say(den, "after", "a")
        await ann.wait_ack("a")
        joined = await bob.join(den, since=0)
        assert joined["last_id"] == 5  # 4: the invitation, in the room's order
        await bob.wait_message_id(den, 5)
        assert [m["text"] for m in bob.messages(den)] == ["after"]
        page = (await answer(bob, type="history", room=den))[0]
        assert [m["text"] for m in page["messages"]] == ["after"]
    finally:
        await close_quietly(ann, bob, cat)


async def test_an_invitation_taken_on_one_node_lets_the_invitee_in_on_another(
    start_node,
) -> None:
    a, b = await start_node(), await start_node()
    tokens = await new_users(a, "ann", "bob")
    ann = await connect_chat(a, tokens["ann"], "ann")
    bob = await connect_chat(b, tokens["bob"], "bob")
    try:
        await bob.join("lobby")
        await ann.send(type="create", room="den", kind="private", ref="c")
        den = (await ann.wait_frame("created", ref="c"))["room"]
        await ann.join(den)
        refused = await answer(bob, type="join", room=den)
        assert refused[0]["code"] == "no_such_room"
        await ann.send(type="invite", room=den, user="bob", ref="i")
        await ann.wait_frame("invited", ref="i")
        await bob.wait_frame("invitation", room=den, by="ann")  # told on node b too
        await bob.join(den)
        await ann.say(den, "hello from a", "h")
        await bob.wait_message_id(den, 1)
        assert [m["text"] for m in bob.messages(den)] == ["hello from a"]
        await bob.say(den, "hello from b", "r")
        await ann.wait_message_id(den, 2)
    finally:
        await close_quietly(ann, bob)
