"""``edit`` and ``delete`` through the chat service, on a real store (SQLite and PostgreSQL).

Driven as the server drives the handler, with peers that record what they are sent.
What must hold: an edit or deletion is acknowledged with its event's id and reaches
every member of the room once, in its place (one node or two with a bus); ``history``
shows each message as it is now, a ``since`` replay the events in order; bad input (not
a message of the room, someone else's) is an ``error`` that changes nothing and keeps the
connection open; a deleted text is not in the database file afterwards.
"""

from __future__ import annotations

import random
import secrets
from pathlib import Path
from typing import Any

import pytest

from rawws.chat import wire as chat
from rawws.chat.service import ChatHandler
from rawws.store import SqlStore, open_store, sqlite_url
from tests.chat.test_doors import HASH, Node
from tests.chat.test_moderation_stream import LossyWire, settle
from tests.chat.test_service import UNLIMITED, FakePeer
from tests.store.test_edits import PADDING

USERS = ("ann", "bob", "cy", "mo")


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
    return store


def of_type(peer: FakePeer, kind: str) -> list[dict[str, Any]]:
    return [f for f in peer.frames if f["type"] == kind]


async def said(node: Node, peer: FakePeer, room: str, text: str) -> int:
    ack = await node.answer(peer, type="say", room=room, text=text, ref="s")
    assert ack["type"] == "ack", ack
    message_id: int = ack["id"]
    return message_id


async def test_an_edit_reaches_each_member_once_and_history_shows_the_message_now(
    store_url: str,
) -> None:
    store = await opened(store_url)
    node = Node(store)
    try:
        peers = {user: node.connect(user) for user in ("ann", "bob", "cy")}
        for peer in peers.values():
            assert (await node.answer(peer, type="join", room="lobby"))[
                "type"
            ] == "joined"
        ann = peers["ann"]
        first = await said(node, ann, "lobby", "helo")
        ack = await node.answer(
            ann, type="edit", room="lobby", id=first, text="hello", ref="e"
        )
        assert ack == {"type": "ack", "ref": "e", "room": "lobby", "id": first + 1}
        for peer in peers.values():
            [edited] = of_type(peer, "edited")
            assert edited == {
                "type": "edited",
                "room": "lobby",
                "id": first + 1,
                "message": first,
                "text": "hello",
                "user": "ann",
                "ts": edited["ts"],
            }
        history = await node.answer(peers["bob"], type="history", room="lobby")
        said_ = [m for m in history["messages"] if m["type"] == "message"]
        assert [(m["id"], m["text"]) for m in said_] == [(first, "hello")]
        assert said_[0]["edited_at"] == edited["ts"]
        assert all(m["type"] in ("message", "member") for m in history["messages"])
        # a reconnect with since: the message as it is now, then the edit, in order
        again = node.connect("cy")
        await node.ask(again, type="join", room="lobby", since=first - 1)
        replayed = [f for f in again.frames if f["type"] in ("message", "edited")]
        assert [(f["type"], f["id"], f["text"]) for f in replayed] == [
            ("message", first, "hello"),
            ("edited", first + 1, "hello"),
        ]
    finally:
        await node.handler.close()
        await store.close()


async def test_deletions_by_the_author_an_owner_and_a_moderator(store_url: str) -> None:
    """A plain member deletes only their own; the owner and a moderator anyone's; each deletion
    reaches every member as ``deleted``; history shows the tombstones."""
    store = await opened(store_url)
    node = Node(store)
    try:
        ann, bob, cy, mo = (node.connect(user) for user in USERS)
        made = await node.answer(ann, type="create", room="den", kind="private")
        room = made["room"]
        for user in ("bob", "cy", "mo"):
            await node.answer(ann, type="invite", room=room, user=user)
        await node.ask(ann, type="role", room=room, user="mo", role="moderator")
        for peer in (ann, bob, cy, mo):
            assert (await node.answer(peer, type="join", room=room))["type"] == "joined"
        ids = [await said(node, bob, room, f"bob{n}") for n in range(4)]
        refused = await node.answer(cy, type="delete", room=room, id=ids[0], ref="d")
        assert (refused["code"], refused["ref"]) == (chat.FORBIDDEN, "d")
        for deleter, target in ((bob, ids[0]), (ann, ids[1]), (mo, ids[2])):
            ack = await node.answer(
                deleter, type="delete", room=room, id=target, ref="d"
            )
            assert ack["type"] == "ack", ack
        for peer in (ann, bob, cy, mo):
            assert [(f["message"], f["user"]) for f in of_type(peer, "deleted")] == [
                (ids[0], "bob"),
                (ids[1], "ann"),
                (ids[2], "mo"),
            ]
            assert all("text" not in f for f in of_type(peer, "deleted"))
        history = await node.answer(cy, type="history", room=room)
        said_ = [m for m in history["messages"] if m["type"] == "message"]
        assert [(m["text"], m.get("deleted"), m.get("deleted_by")) for m in said_] == [
            ("", True, "bob"),
            ("", True, "ann"),
            ("", True, "mo"),
            ("bob3", None, None),
        ]
    finally:
        await node.handler.close()
        await store.close()


async def test_bad_edits_and_deletions_change_nothing_and_keep_the_connection(
    store_url: str,
) -> None:
    """Someone else's message (forbidden); a deleted one, an unknown id, another room's
    message, a membership event (not_found): an error with the ref, the store unchanged,
    the connection open (its next say is stored)."""
    store = await opened(store_url)
    node = Node(store)
    try:
        ann, bob = node.connect("ann"), node.connect("bob")
        for peer in (ann, bob):
            await node.answer(peer, type="join", room="lobby")
            await node.answer(peer, type="join", room="side")
        anns = await said(node, ann, "lobby", "ann's")
        gone = await said(node, bob, "lobby", "gone")
        await node.answer(bob, type="delete", room="lobby", id=gone)
        other = [await said(node, bob, "side", f"elsewhere {n}") for n in range(3)][-1]
        entries = await store.messages_after("lobby", 0, 100)
        event = next(e.id for e in entries if e.kind == "joined")
        before = (entries, await store.messages_after("side", 0, 100))
        cases = [
            ({"type": "edit", "id": anns, "text": "mine now"}, chat.FORBIDDEN),
            ({"type": "delete", "id": anns}, chat.FORBIDDEN),
            ({"type": "edit", "id": gone, "text": "back"}, chat.NOT_FOUND),
            ({"type": "delete", "id": gone}, chat.NOT_FOUND),
            ({"type": "edit", "id": 10_000, "text": "x"}, chat.NOT_FOUND),
            ({"type": "delete", "id": 10_000}, chat.NOT_FOUND),
            ({"type": "edit", "id": event, "text": "x"}, chat.NOT_FOUND),
            ({"type": "delete", "id": event}, chat.NOT_FOUND),
            # a message of "side": in "lobby" its id is the deletion event's
            ({"type": "edit", "id": other, "text": "x"}, chat.NOT_FOUND),
        ]
        assert other == gone + 1
        for n, (frame, code) in enumerate(cases):
            answer = await node.answer(bob, room="lobby", ref=f"r{n}", **frame)
            assert (answer["type"], answer["code"], answer["ref"]) == (
                "error",
                code,
                f"r{n}",
            )
        assert (
            await store.messages_after("lobby", 0, 100),
            await store.messages_after("side", 0, 100),
        ) == before
        assert (
            bob.open
            and (await node.answer(bob, type="say", room="lobby", text="still here"))[
                "type"
            ]
            == "ack"
        )
        changes = [(f["type"], f["message"]) for f in ann.frames if "message" in f]
        assert changes == [("deleted", gone)]  # bob's own, before the bad ones
    finally:
        await node.handler.close()
        await store.close()


async def test_a_muted_member_cannot_edit_but_can_delete_their_own(
    tmp_path: Path,
) -> None:
    store = await opened(sqlite_url(tmp_path))
    node = Node(store)
    try:
        ann, bob = node.connect("ann"), node.connect("bob")
        await node.answer(ann, type="create", room="plaza", kind="public")
        for peer in (ann, bob):
            await node.answer(peer, type="join", room="plaza")
        first = await said(node, bob, "plaza", "one")
        second = await said(node, bob, "plaza", "two")
        await node.ask(ann, type="mute", room="plaza", user="bob", seconds=3600)
        refused = await node.answer(
            bob, type="edit", room="plaza", id=first, text="x", ref="e"
        )
        assert (refused["code"], refused["ref"]) == ("muted", "e")
        assert (await node.answer(bob, type="delete", room="plaza", id=second))[
            "type"
        ] == "ack"
        [kept] = [
            m for m in await store.messages_before("plaza", None, 10) if m.id == first
        ]
        assert (kept.text, kept.edited_at) == ("one", None)
    finally:
        await node.handler.close()
        await store.close()


async def test_a_member_is_not_sent_changes_of_messages_from_before_their_membership(
    tmp_path: Path,
) -> None:
    """Invited after ann's first message: cy gets neither its edit (its new text) nor its
    deletion, live or in a ``since`` replay; she gets those of the message after."""
    store = await opened(sqlite_url(tmp_path))
    node = Node(store)
    try:
        ann = node.connect("ann")
        room = (await node.answer(ann, type="create", room="den", kind="private"))[
            "room"
        ]
        await node.answer(ann, type="join", room=room)
        old = await said(node, ann, room, "before cy")
        await node.answer(ann, type="invite", room=room, user="cy")
        cy = node.connect("cy")
        await node.answer(cy, type="join", room=room)
        new = await said(node, ann, room, "after cy")
        for target in (old, new):
            await node.answer(
                ann, type="edit", room=room, id=target, text=f"{target} edited"
            )
        seen = [
            (f["type"], f.get("message"))
            for f in cy.frames
            if f["type"] in ("edited", "deleted")
        ]
        assert seen == [("edited", new)]
        await node.answer(ann, type="delete", room=room, id=old)
        again = node.connect("cy")
        await node.ask(again, type="join", room=room, since=0)
        replayed = [
            f for f in again.frames if f.get("room") == room and f["type"] != "joined"
        ]
        assert all(f.get("message", f["id"]) > old for f in replayed), replayed
        for text in ("before cy", f"{old} edited"):
            assert text not in repr(again.frames + cy.frames)
        assert [f["text"] for f in replayed if f["type"] == "edited"] == [
            f"{new} edited"
        ]
    finally:
        await node.handler.close()
        await store.close()


async def test_two_nodes_deliver_edits_and_deletions_once_in_order(
    store_url: str,
) -> None:
    """ann on node A, bob on node B, one store, a bus that loses nothing: every id of the room,
    messages and changes, reaches both once, in order."""
    store = await opened(store_url)
    wire = LossyWire(random.Random(0), drop=0.0)
    a, b = (
        ChatHandler(store, bus=wire.endpoint(name), node=name, limits=UNLIMITED)
        for name in ("a", "b")
    )
    await a.start()
    await b.start()
    nodes = [a, b]

    async def send(node: ChatHandler, peer: FakePeer, **frame: object) -> None:
        node.on_message(peer, chat.dumps(frame))
        await settle(nodes)
        wire.deliver_some = lambda: None  # type: ignore[method-assign]
        while wire.pending:
            where, data = wire.pending.pop(0)
            wire.receivers[where](data)
        await settle(nodes)

    try:
        ann, bob = FakePeer("ann"), FakePeer("bob")
        a.on_open(ann)
        b.on_open(bob)
        await send(a, ann, type="join", room="lobby")
        await send(b, bob, type="join", room="lobby")
        for n in range(3):
            await send(a, ann, type="say", room="lobby", text=f"a{n}")
            await send(b, bob, type="say", room="lobby", text=f"b{n}")
        entries = await store.messages_after("lobby", 0, 100)
        anns = [e.id for e in entries if e.kind == "say" and e.user == "ann"]
        bobs = [e.id for e in entries if e.kind == "say" and e.user == "bob"]
        await send(a, ann, type="edit", room="lobby", id=anns[0], text="A0")
        await send(b, bob, type="delete", room="lobby", id=bobs[0])
        await send(b, bob, type="edit", room="lobby", id=bobs[1], text="B1")
        await send(a, ann, type="delete", room="lobby", id=anns[0])
        entries = await store.messages_after("lobby", 0, 100)
        changes = [(e.id, e.kind, e.about) for e in entries if e.about is not None]
        assert len(changes) == 4
        for peer in (ann, bob):
            got = [
                (f["id"], f["type"], f["message"])
                for f in peer.frames
                if f["type"] in ("edited", "deleted")
            ]
            assert got == changes
            ids = [
                f["id"]
                for f in peer.frames
                if f.get("room") == "lobby" and "id" in f and f["type"] != "ack"
            ]
            assert ids == sorted(set(ids))
            assert [f["text"] for f in peer.frames if f["type"] == "edited"] == [
                "A0",
                "B1",
            ]
    finally:
        await a.close()
        await b.close()
        await store.close()


async def test_a_deleted_text_is_not_in_the_database_files_once_the_server_stops(
    tmp_path: Path,
) -> None:
    """The grep test through the chat: a unique text said, then deleted; after the handler and
    the store close, no file in the data directory holds its bytes (a kept text's are found)."""
    store = await opened(sqlite_url(tmp_path))
    node = Node(store)
    secret, kept = f"gone-{secrets.token_hex(8)}", f"kept-{secrets.token_hex(8)}"
    try:
        ann = node.connect("ann")
        await node.answer(ann, type="join", room="lobby")
        gone = await said(node, ann, "lobby", secret + PADDING)
        await said(node, ann, "lobby", kept)
        assert (await node.answer(ann, type="delete", room="lobby", id=gone))[
            "type"
        ] == "ack"
    finally:
        await node.handler.close()
        await store.close()
    files = {
        path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()
    }
    assert any(kept.encode() in data for data in files.values())
    assert [name for name, data in files.items() if secret.encode() in data] == []
