"""Direct rooms through the chat service: ``dm``, who may enter, what ``rooms`` and ``who`` say, the leak.

Driven as in test_doors (peers that record what they are sent, a real store).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawws.chat import wire as chat
from rawws.chat.doors import direct_name
from tests.chat.test_doors import Node, command, kind_of, opened, outsider_hears
from tests.chat.test_doors import (
    store_url as store_url,
)  # the fixture: SQLite, PostgreSQL


async def test_dm_opens_the_pairs_one_room_for_the_two_of_them(store_url: str) -> None:
    store = await opened(store_url)
    node = Node(store)
    try:
        ann, bob, cy = (node.connect(u) for u in ("ann", "bob", "cy"))
        answer = await node.answer(ann, type="dm", user="BOB", ref="d")
        room = direct_name("ann", "bob")
        assert answer == {"type": "direct", "room": room, "user": "bob", "ref": "d"}
        assert bob.frames[-1] == {"type": "direct", "room": room, "user": "ann"}
        again = await node.answer(bob, type="dm", user="ann", ref="e")
        assert (again["type"], again["room"], again["user"]) == ("direct", room, "ann")
        for peer in (ann, bob):
            assert kind_of(await node.answer(peer, type="join", room=room)) == "joined"
        said = await node.ask(ann, type="say", room=room, text="psst", ref="s")
        assert [f["type"] for f in said] == ["ack", "message"]
        assert bob.frames[-1]["text"] == "psst"
        assert (
            kind_of(await node.answer(cy, type="join", room=room)) == chat.NO_SUCH_ROOM
        )
        assert cy.frames[-1]["message"] == f"no room {room}"
        assert not any(f.get("text") == "psst" for f in cy.frames)
        invite = await node.answer(ann, type="invite", room=room, user="cy", ref="i")
        assert (kind_of(invite), invite["ref"]) == (chat.BAD_ROOM, "i")
        members = await node.answer(bob, type="who", room=room)
        assert members["roles"] == {"ann": "member", "bob": "member"}
        listed = await node.answer(ann, type="rooms", ref="q")
        assert listed["rooms"] == [
            {"room": room, "kind": "direct", "role": "member", "user": "bob"}
            | {"last_read": 0, "unread": 0}  # "psst" is her own: not unread
        ]
        assert (await node.answer(cy, type="rooms"))["rooms"] == []
    finally:
        await node.handler.close()
        await store.close()


async def test_dm_with_yourself_or_nobody_changes_nothing_and_keeps_the_connection(
    tmp_path: Path,
) -> None:
    store = await opened(tmp_path)
    node = Node(store)
    try:
        ann = node.connect("ann")
        self_dm = await node.answer(ann, type="dm", user="ANN", ref="a")
        assert (self_dm["code"], self_dm["ref"]) == (chat.BAD_FIELD, "a")
        nobody = await node.answer(ann, type="dm", user="nobody", ref="n")
        assert (nobody["code"], nobody["ref"]) == (chat.NO_SUCH_USER, "n")
        assert await store.visible_rooms("ann") == []
        assert await store.membership(direct_name("ann", "ann"), "ann") is None
        assert ann.open
        assert kind_of(await node.answer(ann, type="join", room="lobby")) == "joined"
    finally:
        await node.handler.close()
        await store.close()


async def test_a_direct_room_made_on_one_node_opens_on_another(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    one, two = Node(store), Node(store)
    try:
        ann = one.connect("ann")
        room = (await one.answer(ann, type="dm", user="bob"))["room"]
        bob = two.connect("bob")
        assert kind_of(await two.answer(bob, type="join", room=room)) == "joined"
    finally:
        for node in (one, two):
            await node.handler.close()
        await store.close()


# -- the leak: a third user's answers for a direct room equal a never-made one's ----------


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands=st.lists(command, min_size=1, max_size=6))
def test_a_direct_room_answers_a_third_user_as_a_room_never_made(
    commands: list[dict],
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(direct_leak(Path(directory), commands))


async def direct_leak(directory: Path, commands: list[dict]) -> None:
    store = await opened(directory)
    node = Node(store)
    try:
        ann = node.connect("ann")
        room = (await node.answer(ann, type="dm", user="dan"))["room"]
        await node.answer(ann, type="join", room=room)
        for text in ("one", "two"):
            await node.answer(ann, type="say", room=room, text=text, ref=text)
        never = direct_name("bob", "dan")  # a pair that never spoke
        heard = await outsider_hears(node, ann, room, never, commands)
        assert heard[room] == heard[never]
        assert not any('"type": "message"' in f for f in heard[room])
    finally:
        await node.handler.close()
        await store.close()
