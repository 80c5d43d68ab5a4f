"""Roles and moderation through the chat service: the authorization matrix (every command × role ×
room kind, on SQLite and PostgreSQL), bad input, and a kick applied in the room's order.

Driven as the server drives the handler, on a real store (roles are stored things).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from rawws.chat import wire as chat
from rawws.chat import wire_moderation as mod
from rawws.chat.doors import stored_admin
from rawws.store import SqlStore, open_store, sqlite_url
from tests.chat.test_doors import HASH, kind_of
from tests.chat.test_doors import Node as DoorsNode
from tests.chat.test_service import FakePeer

USERS = ("ann", "mo", "bob", "cy", "bu", "mu", "ad", "tg", "tb", "tm", "dan")
ADMINS = {"ad"}
ROLES = ("owner", "moderator", "member", "non-member", "banned", "muted", "admin")
ACTOR = dict(
    zip(ROLES, ("ann", "mo", "bob", "cy", "bu", "mu", "ad"), strict=True)
)  # who plays each role


class Node(DoorsNode):
    """One chat handler (a node) that asks the store who is an admin, as ``rawws serve`` does;
    a room's member events are not answers either."""

    NOT_ANSWERS = ("presence", "member")

    def __init__(self, store: SqlStore) -> None:
        super().__init__(store, is_admin=stored_admin(store))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    url: str = request.getfixturevalue("postgres_url")
    return url


async def opened(url: str) -> SqlStore:
    store = await open_store(url)
    for name in USERS:
        await store.create_user(name, HASH)
    for name in ADMINS:  # as `rawws admin grant` does, on the server's machine
        assert await store.set_admin(name, True)
    return store


_names = itertools.count(1)


async def staffed_room(node: Node, kind: str) -> str:
    """A room of ``kind`` owned by ann, with mo its moderator, bob and tg members, bu and tb
    banned, mu and tm muted (a private room's members invited; a public room's just join)."""
    ann = node.connect("ann")
    made = await node.answer(
        ann, type="create", room=f"r{next(_names)}", kind=kind, ref="c"
    )
    room: str = made["room"]
    if kind == "private":
        for user in ("mo", "bob", "mu", "tg", "tm"):
            assert (
                kind_of(await node.answer(ann, type="invite", room=room, user=user))
                == "invited"
            )
    steps: list[dict[str, Any]] = [
        {"type": "role", "user": "mo", "role": "moderator"},
        {"type": "ban", "user": "bu"},
        {"type": "ban", "user": "tb"},
        {"type": "mute", "user": "mu", "seconds": 3600},
        {"type": "mute", "user": "tm", "seconds": 3600},
    ]
    for step in steps:
        done = await node.answer(ann, room=room, **step)
        assert done["type"] == "moderated", (step, done)
    node.handler.on_close(ann, 1000)
    return room


COMMANDS = (
    "join", "leave", "say", "history", "who", "create", "invite", "rooms",
    "kick", "ban", "unban", "mute", "unmute", "role",
)  # fmt: skip
FIELDS: dict[str, dict[str, Any]] = {
    "leave": {},
    "say": {"text": "hi", "ref": "s"},
    "history": {},
    "who": {},
    "create": {"room": "new", "kind": "private", "ref": "c"},  # never taken
    "invite": {"user": "dan", "ref": "i"},
    "rooms": {"ref": "r"},
    "kick": {"user": "tg", "ref": "k"},
    "ban": {"user": "tg", "ref": "b"},
    "unban": {"user": "tb", "ref": "u"},
    "mute": {"user": "tg", "seconds": 60, "ref": "m"},
    "unmute": {"user": "tm", "ref": "n"},
    "role": {"user": "tg", "role": "moderator", "ref": "o"},
}
MODERATING = ("kick", "ban", "unban", "mute", "unmute")


def expected(command: str, role: str, kind: str) -> str:
    """The matrix, written as rules (docs/protocol.md has the same as a table)."""
    private = kind == "private"
    # who is in the room after their join: a private room's members; anyone not banned of a public one
    joined = (
        role in ("owner", "moderator", "member", "muted")
        if private
        else role != "banned"
    )
    outsider = NO = chat.NO_SUCH_ROOM
    if not private:
        outsider = chat.FORBIDDEN  # public rooms are no secret
    manager = role in ("owner", "moderator", "admin")
    if command == "join":
        if joined:
            return "joined"
        return mod.BANNED if not private else NO
    if command in ("leave", "say", "history", "who"):
        if not joined:
            return chat.NOT_JOINED
        if command == "say":
            return mod.MUTED if role == "muted" else "ack"
        return {"leave": "left", "history": "history", "who": "members"}[command]
    if command == "create":
        return "created"
    if command == "rooms":
        return "rooms"
    if command == "invite":
        if not private:
            return chat.BAD_ROOM
        if manager:
            return "invited"
        return chat.FORBIDDEN if joined else NO
    in_room = private and (joined or role == "admin")
    if command in MODERATING:
        if manager:
            return "moderated"
        return chat.FORBIDDEN if in_room or not private else outsider
    assert command == "role"
    if role in ("owner", "admin"):
        return "moderated"
    return chat.FORBIDDEN if in_room or not private else outsider


async def test_the_authorization_matrix(store_url: str) -> None:
    """command × role (owner, moderator, member, non-member, banned, muted, admin) × kind (public,
    private): 14 × 7 × 2 = 196 cases, each in a freshly staffed room, on a fresh connection that
    first joins (as any client would); on SQLite and PostgreSQL."""
    store = await opened(store_url)
    node = Node(store)
    try:
        got: dict[tuple[str, str, str], str] = {}
        want: dict[tuple[str, str, str], str] = {}
        for kind in ("public", "private"):
            for command in COMMANDS:
                room = await staffed_room(node, kind)
                for role in ROLES:
                    peer = node.connect(ACTOR[role])
                    joined = await node.answer(peer, type="join", room=room, ref="j")
                    answer = joined
                    if command != "join":
                        frame = {"room": room, **FIELDS[command]}
                        answer = await node.answer(peer, type=command, **frame)
                    if command in FIELDS and "ref" in FIELDS[command]:
                        assert answer.get("ref") == FIELDS[command]["ref"], answer
                    got[(command, role, kind)] = kind_of(answer)
                    want[(command, role, kind)] = expected(command, role, kind)
                    node.handler.on_close(peer, 1000)
                    if (
                        answer["type"] == "moderated"
                    ):  # undo, so the next role finds the same room
                        room = await staffed_room(node, kind)
        assert len(got) == 196
        assert got == want
    finally:
        await node.handler.close()
        await store.close()


DIRECT_ROLES = {
    "member": "bob",
    "non-member": "cy",
    "admin": "ad",
}  # bob's room with tg


def expected_direct(command: str, role: str) -> str:
    """A direct room: its two users only; nobody invites to it or moderates it, admins neither
    (``bad_room``, told by the name alone); to anyone else it is a room that does not exist."""
    member = role == "member"
    if command == "join":
        return "joined" if member else chat.NO_SUCH_ROOM
    if command in ("leave", "say", "history", "who"):
        if not member:
            return chat.NOT_JOINED
        return {"leave": "left", "say": "ack", "history": "history", "who": "members"}[
            command
        ]
    if command in ("create", "rooms"):
        return {"create": "created", "rooms": "rooms"}[command]
    return chat.BAD_ROOM  # invite, and every moderation command


async def test_the_direct_room_matrix(store_url: str) -> None:
    """command × role (member, non-member, admin) in a direct room: 14 × 3 = 42 cases, each on a
    fresh connection that first joins; on SQLite and PostgreSQL."""
    store = await opened(store_url)
    node = Node(store)
    try:
        bob = node.connect("bob")
        room = (await node.answer(bob, type="dm", user="tg", ref="d"))["room"]
        node.handler.on_close(bob, 1000)
        got: dict[tuple[str, str], str] = {}
        want: dict[tuple[str, str], str] = {}
        for command in COMMANDS:
            for role, user in DIRECT_ROLES.items():
                peer = node.connect(user)
                answer = await node.answer(peer, type="join", room=room, ref="j")
                if command != "join":
                    frame = {"room": room, **FIELDS[command]}
                    answer = await node.answer(peer, type=command, **frame)
                got[(command, role)] = kind_of(answer)
                want[(command, role)] = expected_direct(command, role)
                node.handler.on_close(peer, 1000)
        assert len(got) == 42
        assert got == want
        rooms = await node.answer(node.connect("tg"), type="rooms", ref="r")
        assert [
            (r["room"], r["role"]) for r in rooms["rooms"] if r["kind"] == "direct"
        ] == [
            (room, "member")
        ]  # tg is still in it: nothing anyone sent took the room away
    finally:
        await node.handler.close()
        await store.close()


async def test_bad_moderation_is_an_error_that_changes_nothing(tmp_path: Path) -> None:
    """Kicking yourself, an unknown user, a role that does not exist, banning the owner, a
    moderator on a moderator, and the rest of the table's refusals: each an ``error``, the
    room's stream and membership untouched, the connection open."""
    store = await opened(sqlite_url(tmp_path))
    node = Node(store)
    try:
        room = await staffed_room(node, "private")
        ann, mo, ad = node.connect("ann"), node.connect("mo"), node.connect("ad")
        dan = "dan"  # registered, never invited
        cases: list[tuple[FakePeer, dict[str, Any], str]] = [
            (ann, {"type": "kick", "user": "ANN"}, mod.BAD_TARGET),
            (ann, {"type": "kick", "user": "nobody"}, chat.NO_SUCH_USER),
            (ann, {"type": "role", "user": "tg", "role": "king"}, mod.BAD_ROLE),
            (ad, {"type": "ban", "user": "ann"}, mod.BAD_TARGET),
            (mo, {"type": "kick", "user": "ann"}, mod.BAD_TARGET),
            (ann, {"type": "unban", "user": "bob"}, mod.NOT_BANNED),
            (ann, {"type": "unmute", "user": "bob"}, mod.BAD_TARGET),
            (ann, {"type": "kick", "user": dan}, mod.NOT_MEMBER),
            (ann, {"type": "mute", "user": dan, "seconds": 5}, mod.NOT_MEMBER),
            (ann, {"type": "kick", "user": "bu"}, mod.NOT_MEMBER),
            (ann, {"type": "invite", "user": "bu"}, mod.BANNED),
            (ann, {"type": "mute", "user": "bob", "seconds": 0}, chat.BAD_FIELD),
            (ann, {"type": "role", "user": "mo", "role": "moderator"}, mod.BAD_TARGET),
            (mo, {"type": "role", "user": "bob", "role": "moderator"}, chat.FORBIDDEN),
        ]
        before = await store.last_message_id(room)
        rows = {u: await store.membership(room, u) for u in USERS}
        for peer, frame, code in cases:
            answer = await node.answer(peer, room=room, ref="x", **frame)
            assert (answer["type"], answer.get("code"), answer["ref"]) == (
                "error",
                code,
                "x",
            ), frame
        assert await store.last_message_id(room) == before
        assert {u: await store.membership(room, u) for u in USERS} == rows
        # a moderator acts on members only: one moderator on another is forbidden
        done = await node.answer(
            ann, type="role", room=room, user="tg", role="moderator"
        )
        assert done["type"] == "moderated"
        refused = await node.answer(mo, type="kick", room=room, user="tg", ref="k")
        assert refused["code"] == chat.FORBIDDEN
        await node.answer(ann, type="join", room=room)
        assert (
            kind_of(await node.answer(ann, type="say", room=room, text="still here"))
            == "ack"
        )
    finally:
        await node.handler.close()
        await store.close()


async def test_mute_refuses_say_until_unmuted_and_ownership_changes_hands(
    tmp_path: Path,
) -> None:
    store = await opened(sqlite_url(tmp_path))
    node = Node(store)
    try:
        room = await staffed_room(node, "private")
        ann, bob = node.connect("ann"), node.connect("bob")
        for peer in (ann, bob):
            assert kind_of(await node.answer(peer, type="join", room=room)) == "joined"
        muted = await node.answer(ann, type="mute", room=room, user="bob", seconds=600)
        assert (muted["type"], muted["event"], muted["user"]) == (
            "moderated",
            "muted",
            "bob",
        )
        told = [f for f in bob.frames if f["type"] == "member"][-1]
        assert (told["event"], told["by"], told["id"]) == ("muted", "ann", muted["id"])
        refused = await node.answer(bob, type="say", room=room, text="hey", ref="s")
        assert (refused["code"], refused["ref"]) == (mod.MUTED, "s")
        assert refused["until"] == pytest.approx(told["until"])
        await node.answer(ann, type="unmute", room=room, user="bob")
        assert (
            kind_of(await node.answer(bob, type="say", room=room, text="hey")) == "ack"
        )
        # the owner hands over: bob owns it, ann moderates, and only bob gives roles now
        handed = await node.answer(
            ann, type="role", room=room, user="bob", role="owner"
        )
        assert handed["type"] == "moderated"
        assert (await store.room_info(room)).owner == "bob"  # type: ignore[union-attr]
        assert (await store.membership(room, "ann")).role == "moderator"  # type: ignore[union-attr]
        again = await node.answer(
            ann, type="role", room=room, user="tg", role="moderator"
        )
        assert again["code"] == chat.FORBIDDEN
        assert (await node.answer(ann, type="kick", room=room, user="bob"))["code"] == (
            mod.BAD_TARGET
        )
    finally:
        await node.handler.close()
        await store.close()


async def test_a_public_room_made_by_a_join_is_moderated_by_admins_only(
    tmp_path: Path,
) -> None:
    store = await opened(sqlite_url(tmp_path))
    node = Node(store)
    try:
        bob, cy, ad = node.connect("bob"), node.connect("cy"), node.connect("ad")
        for peer in (bob, cy):
            assert (
                kind_of(await node.answer(peer, type="join", room="square")) == "joined"
            )
        await node.answer(bob, type="say", room="square", text="hello")
        refused = await node.answer(cy, type="ban", room="square", user="bob")
        assert refused["code"] == chat.FORBIDDEN
        banned = await node.answer(ad, type="ban", room="square", user="bob")
        assert banned["type"] == "moderated"
        assert bob.frames[-1] == {
            "type": "removed",
            "room": "square",
            "id": banned["id"],
            "reason": "banned",
            "by": "ad",
        }
        assert kind_of(await node.answer(bob, type="join", room="square")) == mod.BANNED
        assert (await node.answer(ad, type="unban", room="square", user="bob"))[
            "type"
        ] == ("moderated")
        assert kind_of(await node.answer(bob, type="join", room="square")) == "joined"
    finally:
        await node.handler.close()
        await store.close()


def test_a_membership_event_crosses_the_bus_whole_and_a_bad_one_is_refused() -> None:
    from rawws.chat.codec import Posted, decode_event, encode_event
    from rawws.store import StoredMessage

    event = StoredMessage("den.abcdefgh", 7, "ann", "", 1.5, "kicked", "bob")
    assert decode_event(encode_event(Posted("a", event))) == Posted("a", event)
    said = StoredMessage("lobby", 8, "ann", "hi", 2.0)
    assert decode_event(encode_event(Posted("a", said))) == Posted("a", said)
    import json

    body = json.loads(encode_event(Posted("a", event)))
    for bad in ({"e": "exploded"}, {"g": ""}, {"g": 5}):
        assert decode_event(json.dumps(body | bad)) is None, bad
