"""Edits and deletions over two nodes whose bus drops and reorders: every client ends up seeing
what the store holds, and no deleted text reaches a client once it has passed the deletion.

Hypothesis drives random says, edits, deletions (of one's own messages and of others': the
owner may delete them, others are refused), history reads and reconnects with ``since``
(the client's newest id), by three users spread over two in-process nodes sharing one
store (SQLite, and PostgreSQL); their bus (``LossyWire``) drops some events and delivers the
rest late and out of order. At the end the bus comes back (each node's ``catch_up``).

What must hold, for each user, over all their connections in turn:

* their view, built only from the frames they got (``message``, ``edited``, ``deleted``,
  ``history``), equals the store's ``history`` of the room: each message's text, whether
  it is deleted, and when it was last edited;
* once they have been sent an id at or past a deletion's, no later frame carries any
  text the deleted message ever had;
* a connection opened after a deletion was acknowledged is never sent any text the
  deleted message had (whatever it replays is read from the store, where it is gone).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rawws.chat.service import ChatHandler
from rawws.store import SqlStore, open_store, sqlite_url
from tests.chat.test_doors import HASH
from tests.chat.test_moderation_stream import LossyWire, settle
from tests.chat.test_service import UNLIMITED, FakePeer

USERS = ("ann", "bob", "cy")
ROOM = "plaza"
KINDS = (
    ("say",) * 4
    + ("edit",) * 3
    + ("delete",) * 2
    + ("reconnect",) * 2
    + ("deliver", "history")
)
OPS = st.lists(
    st.tuples(st.sampled_from(KINDS), st.sampled_from(USERS), st.integers(0, 50)),
    min_size=10,
    max_size=30,
)
View = dict[
    int, tuple[str, bool, float | None]
]  # message id → (text, deleted, edited_at)


class Client:
    """One user's view of the room, kept across their connections as a real client keeps it."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.view: View = {}
        self.newest = 0  # the highest id of the room this user was sent
        self.joined = False  # a first ``joined`` came: every later join sends ``since``
        self.frames: list[
            dict[str, Any]
        ] = []  # every frame of every connection, in order

    def take(self, frames: list[dict[str, Any]]) -> None:
        for frame in frames:
            self.frames.append(frame)
            if frame.get("room") != ROOM:
                continue
            kind = frame["type"]
            if kind == "joined" and not self.joined:  # without since: from here on
                self.joined = True
                self.newest = frame["last_id"]
            if kind == "history":
                for item in frame["messages"]:
                    self._message(item)
                continue
            if kind not in ("message", "edited", "deleted", "member"):
                continue
            assert frame["id"] > self.newest, (self.user, frame, "not in order")
            self.newest = frame["id"]
            if kind == "message":
                self._message(frame)
            elif kind == "edited":
                _, deleted, _ = self.view[frame["message"]]
                self.view[frame["message"]] = (frame["text"], deleted, frame["ts"])
            elif kind == "deleted":
                _, _, edited_at = self.view[frame["message"]]
                self.view[frame["message"]] = ("", True, edited_at)

    def _message(self, item: dict[str, Any]) -> None:
        if item["type"] == "message":
            state = (item["text"], item.get("deleted", False), item.get("edited_at"))
            self.view[item["id"]] = state


def store_view(entries: list[Any]) -> View:
    return {
        e.id: (e.text, e.deleted_at is not None, e.edited_at)
        for e in entries
        if e.kind == "say"
    }


def carried(frame: dict[str, Any]) -> set[str]:
    """Every text in ``frame``: its own, or those of the messages of a ``history``."""
    return {frame.get("text")} | {m.get("text") for m in frame.get("messages", ())}


def no_deleted_text_after_its_deletion(
    client: Client, texts: dict[int, set[str]], deletions: dict[int, int]
) -> None:
    """``deletions``: deletion id → message id; ``texts``: message id → every text it had."""
    newest = 0
    for frame in client.frames:
        if frame.get("room") != ROOM:
            continue
        carried = {frame.get("text")} | {
            m.get("text") for m in frame.get("messages", ())
        }
        for deletion, message in deletions.items():
            if newest >= deletion:
                assert not (carried & texts[message]), (client.user, frame, deletion)
        if frame["type"] in ("message", "edited", "deleted", "member"):
            newest = frame["id"]


# while cy is away bob edits, and ann (the owner) deletes it; cy comes back (a replay)
EDITED_THEN_DELETED = [
    ("say", "bob", 1),
    ("say", "cy", 1),
    ("away", "cy", 0),
    ("edit", "bob", 1),
    ("delete", "ann", 0),
    ("reconnect", "cy", 0),
    ("edit", "cy", 1),
    ("deliver", "cy", 0),
    ("delete", "cy", 1),
    ("history", "bob", 0),
    ("reconnect", "bob", 0),
]


@example(ops=EDITED_THEN_DELETED, seed=1, homes=[False, True, True])
@example(
    ops=[("say", "bob", 0), ("reconnect", "ann", 0)]
    + [("say", "ann", 0)] * 7
    + [("edit", "bob", 0)],
    seed=1,
    homes=[False, True, True],
)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(
    ops=OPS,
    seed=st.integers(0, 2**32 - 1),
    homes=st.lists(st.booleans(), min_size=3, max_size=3),
)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_every_view_equals_the_store_and_no_deleted_text_comes_after_its_deletion(
    request: pytest.FixtureRequest,
    backend: str,
    ops: list[tuple[str, str, int]],
    seed: int,
    homes: list[bool],
) -> None:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            asyncio.run(
                scenario(sqlite_url(directory), ops, random.Random(seed), homes)
            )
        return
    cluster = request.getfixturevalue("postgres_cluster")
    asyncio.run(
        scenario(asyncio.run(new_database(cluster)), ops, random.Random(seed), homes)
    )


_numbers = itertools.count(1)


async def new_database(cluster: Any) -> str:
    import asyncpg

    name = f"edits_{os.getpid()}_{next(_numbers)}"
    admin = await asyncpg.connect(
        host=cluster.host, port=cluster.port, user=cluster.user, database="postgres"
    )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url: str = cluster.url(name)
    return url


async def scenario(
    url: str, ops: list[tuple[str, str, int]], rng: random.Random, homes: list[bool]
) -> None:
    store: SqlStore = await open_store(url)
    for name in USERS:
        await store.create_user(name, HASH)
    wire = LossyWire(rng)
    nodes = [
        ChatHandler(store, bus=wire.endpoint(name), node=name, limits=UNLIMITED)
        for name in ("a", "b")
    ]
    for node in nodes:
        await node.start()
    home = {user: nodes[int(on_b)] for user, on_b in zip(USERS, homes, strict=True)}
    clients = {user: Client(user) for user in USERS}
    peers: dict[str, FakePeer] = {}
    texts: dict[int, set[str]] = {}
    deletions: dict[int, int] = {}
    authors: dict[int, str] = {}
    # each connection, with the messages whose deletion was acknowledged before it opened
    connections: list[tuple[FakePeer, list[int]]] = []

    def send(user: str, **frame: object) -> None:
        if user in peers:  # not while away
            home[user].on_message(peers[user], json.dumps(frame))

    def answer(user: str, ref: str) -> dict[str, Any] | None:
        frames = peers[user].frames if user in peers else []
        return next((f for f in frames if f.get("ref") == ref), None)

    def away(user: str) -> None:
        """``user``'s connection closes (what it got is their client's): none until ``connect``."""
        if user in peers:
            home[user].on_close(peers[user], 1000)
            clients[user].take(peers.pop(user).frames)

    def connect(user: str) -> None:
        """A new connection of ``user`` joins with ``since`` their newest id (none the first time)."""
        away(user)
        # as the page does: after a first join, always `since` (0 too: nothing came yet)
        since = clients[user].newest if clients[user].joined else None
        peers[user] = FakePeer(user)
        connections.append((peers[user], list(deletions.values())))
        home[user].on_open(peers[user])
        frame: dict[str, object] = {"type": "join", "room": ROOM}
        if since is not None:
            frame["since"] = since
        send(user, **frame)

    try:
        peers["ann"] = FakePeer("ann")
        home["ann"].on_open(peers["ann"])
        send("ann", type="create", room=ROOM, kind="public")
        await settle(nodes)
        for user in USERS:  # everyone a member before anything is said
            connect(user)
            await settle(nodes)
        for n, (op, user, pick) in enumerate(ops):
            # mostly one's own messages (what an author changes), sometimes anyone's (refused,
            # but by the owner's deletion), and deleted ones too (refused)
            mine = [i for i in sorted(texts) if authors[i] == user]
            said = mine if mine and pick % 4 else sorted(texts)
            ref = f"{op}{n}"
            if op == "say":
                send(user, type="say", room=ROOM, text=f"t{n}", ref=ref)
            elif op in ("edit", "delete") and said:
                target = said[pick % len(said)]
                fields: dict[str, object] = {"text": f"t{n}"} if op == "edit" else {}
                send(user, type=op, room=ROOM, id=target, ref=ref, **fields)
            elif op == "reconnect":
                connect(user)
            elif op == "away":
                away(user)
            elif op == "history":
                send(user, type="history", room=ROOM)
            wire.deliver_some()
            await settle(nodes)
            ack = answer(user, ref)
            if ack is None or ack["type"] != "ack":
                continue
            if op == "say":
                texts[ack["id"]] = {f"t{n}"}
                authors[ack["id"]] = user
            elif op == "edit":
                texts[target].add(f"t{n}")
            elif op == "delete":
                deletions[ack["id"]] = target
        for user in USERS:  # those away come back
            if user not in peers:
                connect(user)
        # the bus comes back: what is in flight arrives, and each node catches up from the store
        wire.deliver_some()
        wire.pending.clear()
        for node in nodes:
            await node.feed.catch_up()
        await settle(nodes)
        for user in USERS:
            clients[user].take(peers[user].frames)
        expected = store_view(await store.messages_before(ROOM, None, 10_000))
        assert set(expected) == set(texts)
        for client in clients.values():
            assert client.view == expected, client.user
            no_deleted_text_after_its_deletion(client, texts, deletions)
        for peer, gone in connections:
            for frame in peer.frames:
                for message in gone:
                    assert not (carried(frame) & texts[message]), (peer.user, frame)
    finally:
        for node in nodes:
            await node.close()
        await store.close()
