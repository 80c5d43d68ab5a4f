"""The invariant of membership in the room's stream, over two nodes whose bus drops and reorders.

For every room and user: a user who is not a member when a message is stored never
receives it, live, in a ``since`` replay or in ``history``. And exactly: each stretch
of a connection in the room (from its ``joined`` to its ``removed``, or to the end)
carries every id of the room from where it started to where it ended, once, in order
(messages and membership events alike), so ``since`` recovery stays exact.

Hypothesis drives random invitations, joins (with and without ``since``), kicks, bans,
unbans, leaving for good, messages and history reads, in a private or a public room (whose
membership begins with a stored ``joined``), over two in-process nodes sharing one SQLite store;
their bus (``LossyWire``) drops some events and delivers the rest late and out of
order. At the end the bus "comes back" (each node's ``catch_up``, as after an outage).
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
from collections.abc import Callable, Coroutine
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rawws.chat.service import ChatHandler
from rawws.store import SqlStore, StoredMessage, open_store, sqlite_url
from rawws.store.names import username_key
from tests.chat.test_doors import HASH
from tests.chat.test_service import UNLIMITED, FakePeer

USERS = ("ann", "bob", "cy", "dan")


class LossyWire:
    """An in-process bus between nodes that drops some events and holds the rest for later."""

    def __init__(self, rng: random.Random, drop: float = 0.25) -> None:
        self.rng = rng
        self.drop = drop
        self.receivers: dict[str, Callable[[bytes], None]] = {}
        self.pending: list[tuple[str, bytes]] = []
        self.dropped = 0

    def endpoint(self, node: str) -> LossyBus:
        return LossyBus(self, node)

    def publish(self, source: str, data: bytes) -> None:
        for node in self.receivers:
            if node == source:
                continue
            if self.rng.random() < self.drop:
                self.dropped += 1
            else:
                self.pending.append((node, data))

    def deliver_some(self) -> None:
        """A random part of what is in flight arrives, in a random order."""
        self.rng.shuffle(self.pending)
        count = self.rng.randrange(len(self.pending) + 1)
        now, self.pending = self.pending[:count], self.pending[count:]
        for node, data in now:
            self.receivers[node](data)


class LossyBus:
    connected = True

    def __init__(self, wire: LossyWire, node: str) -> None:
        self.wire, self.node = wire, node

    def publish(self, data: bytes) -> None:
        self.wire.publish(self.node, data)

    async def start(
        self,
        receive: Callable[[bytes], None],
        on_reconnect: Callable[[], Coroutine[Any, Any, None]],
    ) -> None:
        self.wire.receivers[self.node] = receive

    async def close(self) -> None:
        self.wire.receivers.pop(self.node, None)


async def settle(handlers: list[ChatHandler]) -> None:
    """Until no node has a commit, replay, query or gap read running."""
    async with asyncio.timeout(20):
        while True:
            busy: set[asyncio.Task[Any]] = set()
            for handler in handlers:
                await handler.writer.flush()
                busy |= {t for t in handler._tasks if not t.done()}
                busy |= {t for t in handler.feed._fetching.values() if not t.done()}
            if not busy:
                await asyncio.sleep(0)
                if all(
                    not h._tasks and not h.feed._fetching and not h.writer._pending
                    for h in handlers
                ):
                    return
                continue
            await asyncio.wait(busy)


# Weighted by repetition: enough invitations and joins that kicks and bans hit members.
KINDS = (
    ("invite",) * 3
    + ("join",) * 3
    + ("join_since",) * 2
    + ("say",) * 4
    + ("kick",) * 2
    + ("ban", "unban", "history", "history", "deliver", "part")
)
OPS = st.lists(
    st.tuples(
        st.sampled_from(KINDS), st.sampled_from(("bob", "cy", "bob", "cy", "dan"))
    ),
    min_size=4,
    max_size=30,
)
# A kick while bob is on the other node, messages after it, and bob asking for history.
KICKED_THEN_TALK = [
    ("invite", "bob"),
    ("join", "bob"),
    ("say", "bob"),
    ("kick", "bob"),
    ("say", "cy"),
    ("say", "cy"),
    ("history", "bob"),
]


def membership_at(entries: list[StoredMessage]) -> dict[int, set[str]]:
    """For each stored id: who was a member of the room when it was stored."""
    members = {"ann"}
    at: dict[int, set[str]] = {}
    for entry in entries:
        target = username_key(entry.target or "")
        if entry.kind in ("invited", "joined"):
            members.add(target)
        elif entry.kind in ("kicked", "banned", "left"):
            members.discard(target)
        at[entry.id] = set(members)
    return at


def check(
    user: str,
    peer: FakePeer,
    room: str,
    entries: list[StoredMessage],
    joins: dict[int, int | None],
) -> int:
    """Every id ``user`` got was stored while they were a member; every stretch is exact.

    Returns how many deliveries were checked."""
    at = membership_at(entries)
    by_id = {e.id: e for e in entries}
    last = entries[-1].id if entries else 0
    checked = 0
    stretch: list[int] | None = None
    start = 0

    def close(end: int) -> None:
        assert stretch == list(range(start + 1, end)), (user, start, end, stretch)

    for index, frame in enumerate(peer.frames):
        if frame.get("room") != room:
            continue
        kind = frame["type"]
        if kind in ("message", "member"):
            assert user in at[frame["id"]], (user, frame, "not a member when stored")
            assert stretch is not None, (user, frame, "outside any stretch")
            stretch.append(frame["id"])
            checked += 1
        elif kind == "history":
            for item in frame["messages"]:
                assert user in at[item["id"]], (user, item, "history of a non-member")
                checked += 1
        elif kind == "joined":
            since = joins[index]
            invited = [
                e.id
                for e in entries
                if e.kind in ("invited", "joined")
                and username_key(e.target or "") == user
                and e.id <= frame["last_id"]
            ]
            floor = max(invited, default=0)
            start = max(
                frame["last_id"] if since is None else min(since, frame["last_id"]),
                floor,
            )
            stretch = []
        elif kind == "removed":
            assert stretch is not None and by_id[frame["id"]].kind in (
                "kicked",
                "banned",
                "left",
            )
            close(frame["id"])
            stretch = None
        elif kind == "left":  # this connection left: what it got up to then is exact
            if stretch is not None:
                close(start + 1 + len(stretch))
                assert frame.get("id") is None or all(i < frame["id"] for i in stretch)
            stretch = None
    if stretch is not None:
        close(last + 1)
    return checked


@example(ops=KICKED_THEN_TALK, seed=1, homes=[True, False, True], kind="private")
@example(ops=KICKED_THEN_TALK, seed=1, homes=[True, False, True], kind="public")
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    ops=OPS,
    seed=st.integers(0, 2**32 - 1),
    homes=st.lists(st.booleans(), min_size=3, max_size=3),
    kind=st.sampled_from(("private", "public")),
)
def test_no_message_reaches_a_non_member_and_every_stretch_is_exact(
    ops: list[tuple[str, str]], seed: int, homes: list[bool], kind: str
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(scenario(ops, random.Random(seed), homes, directory, kind))


async def scenario(
    ops: list[tuple[str, str]],
    rng: random.Random,
    homes: list[bool],
    directory: str,
    kind: str = "private",
) -> None:
    store: SqlStore = await open_store(sqlite_url(directory))
    for name in USERS:
        await store.create_user(name, HASH)
    wire = LossyWire(rng)
    nodes = [
        ChatHandler(store, bus=wire.endpoint(name), node=name, limits=UNLIMITED)
        for name in ("a", "b")
    ]
    for node in nodes:
        await node.start()
    try:
        a = nodes[0]
        home = {"ann": a} | {
            user: nodes[int(on_b)] for user, on_b in zip(USERS[1:], homes, strict=True)
        }
        peers: dict[str, FakePeer] = {}
        for user in USERS:
            peers[user] = FakePeer(user)
            home[user].on_open(peers[user])
        joins: dict[str, dict[int, int | None]] = {user: {} for user in USERS}

        def send(sender: str, **frame: object) -> None:
            home[sender].on_message(peers[sender], json.dumps(frame))

        send("ann", type="create", room="den", kind=kind, ref="c")
        await settle(nodes)
        room = next(f["room"] for f in peers["ann"].frames if f["type"] == "created")

        async def join(user: str, since: int | None) -> None:
            before = len(peers[user].frames)
            frame: dict[str, object] = {"type": "join", "room": room}
            if since is not None:
                frame["since"] = since
            send(user, **frame)
            await settle(nodes)
            for index in range(before, len(peers[user].frames)):
                if peers[user].frames[index]["type"] == "joined":
                    joins[user][index] = since

        await join("ann", None)
        for n, (op, user) in enumerate(ops):
            if op == "invite" and kind == "public":  # no door to open: they walk in
                await join(user, None)
            elif op == "part":
                send(user, type="leave", room=room, for_good=True)
            elif op in ("invite", "kick", "ban", "unban"):
                send("ann", type=op, room=room, user=user, ref=f"{op}{n}")
            elif op == "join":
                await join(user, None)
            elif op == "join_since":
                await join(user, rng.randrange(0, 4))
            elif op == "say":
                send(
                    rng.choice([user, "ann"]),
                    type="say",
                    room=room,
                    text=f"m{n}",
                    ref=f"s{n}",
                )
            elif op == "history":
                send(user, type="history", room=room)
            wire.deliver_some()
            await settle(nodes)
        # the bus comes back: what is in flight arrives, and each node catches up from the store
        wire.deliver_some()
        wire.pending.clear()
        for node in nodes:
            await node.feed.catch_up()
        await settle(nodes)
        entries = await store.messages_after(room, 0, 10_000)
        for user in USERS:
            check(user, peers[user], room, entries, joins[user])
    finally:
        for node in nodes:
            await node.close()
        await store.close()


async def test_a_kick_the_bus_lost_holds_on_the_other_node_from_its_place_on(
    tmp_path: Any,
) -> None:
    """The bus loses everything (Redis down): bob, on node B, is kicked on node A, and ann
    talks on. B has not heard: bob's history stops where B's delivery to him stopped, so it
    holds nothing stored after the kick. The bus comes back: B reads the kick from the
    store in its place, bob is told (removed, with its id) and gets nothing after it."""
    store: SqlStore = await open_store(sqlite_url(tmp_path))
    for name in USERS:
        await store.create_user(name, HASH)
    wire = LossyWire(random.Random(0), drop=0.0)
    a, b = (
        ChatHandler(store, bus=wire.endpoint(name), node=name, limits=UNLIMITED)
        for name in ("a", "b")
    )
    await a.start()
    await b.start()
    try:
        ann, bob = FakePeer("ann"), FakePeer("bob")
        a.on_open(ann)
        b.on_open(bob)
        a.on_message(
            ann, json.dumps({"type": "create", "room": "den", "kind": "private"})
        )
        await settle([a, b])
        room = ann.frames[-1]["room"]
        for frame in (
            {"type": "join", "room": room},
            {"type": "invite", "room": room, "user": "bob"},
        ):
            a.on_message(ann, json.dumps(frame))
            await settle([a, b])
        b.on_message(bob, json.dumps({"type": "join", "room": room}))
        await settle([a, b])
        a.on_message(
            ann, json.dumps({"type": "say", "room": room, "text": "hi", "ref": "1"})
        )
        await settle([a, b])
        wire.deliver_some = lambda: None  # type: ignore[method-assign]
        while wire.pending:
            node, data = wire.pending.pop(0)
            wire.receivers[node](data)
        await settle([a, b])
        assert [f["text"] for f in bob.frames if f["type"] == "message"] == ["hi"]
        wire.drop = 1.0  # Redis goes down
        a.on_message(ann, json.dumps({"type": "kick", "room": room, "user": "bob"}))
        await settle([a, b])
        for n in range(3):
            text = json.dumps(
                {"type": "say", "room": room, "text": f"after{n}", "ref": f"a{n}"}
            )
            a.on_message(ann, text)
        await settle([a, b])
        kick_id = next(f["id"] for f in ann.frames if f["type"] == "moderated")
        b.on_message(bob, json.dumps({"type": "history", "room": room}))
        await settle([a, b])
        history = bob.frames[-1]
        assert history["type"] == "history"
        assert max(m["id"] for m in history["messages"]) < kick_id
        wire.drop = 0.0  # it comes back
        await b.feed.catch_up()
        await settle([a, b])
        removed = [f for f in bob.frames if f["type"] == "removed"]
        assert removed == [
            {
                "type": "removed",
                "room": room,
                "id": kick_id,
                "reason": "kicked",
                "by": "ann",
            }
        ]
        assert all(
            f.get("id", 0) < kick_id for f in bob.frames if f["type"] == "message"
        )
        b.on_message(bob, json.dumps({"type": "join", "room": room, "ref": "j"}))
        await settle([a, b])
        assert bob.frames[-1]["code"] == "no_such_room"
    finally:
        await a.close()
        await b.close()
        await store.close()


async def test_a_membership_a_node_remembers_is_read_again_before_anything_is_sent(
    tmp_path: Any,
) -> None:
    """Node B has seen bob's membership (he joined there, then left); the kick on A is lost
    on the bus. Bob joins again on B: B lets him into the hub on what it remembers, but
    reads the membership again once it has the room's last id, and sends him nothing of
    the room but the refusal."""
    store: SqlStore = await open_store(sqlite_url(tmp_path))
    for name in USERS:
        await store.create_user(name, HASH)
    wire = LossyWire(random.Random(0), drop=1.0)  # the bus loses everything
    a, b = (
        ChatHandler(store, bus=wire.endpoint(name), node=name, limits=UNLIMITED)
        for name in ("a", "b")
    )
    await a.start()
    await b.start()
    try:
        ann, bob = FakePeer("ann"), FakePeer("bob")
        a.on_open(ann)
        b.on_open(bob)

        async def tell(node: ChatHandler, peer: FakePeer, **frame: object) -> None:
            node.on_message(peer, json.dumps(frame))
            await settle([a, b])

        await tell(a, ann, type="create", room="den", kind="private")
        room = ann.frames[-1]["room"]
        await tell(a, ann, type="invite", room=room, user="bob")
        await tell(b, bob, type="join", room=room)
        await tell(b, bob, type="leave", room=room)
        assert b.doors.cache.get(room, "bob") is not None  # B remembers him
        await tell(a, ann, type="kick", room=room, user="bob")
        await tell(a, ann, type="join", room=room)
        await tell(a, ann, type="say", room=room, text="after the kick", ref="s")
        mark = len(bob.frames)
        await tell(b, bob, type="join", room=room, since=0)
        got = [f for f in bob.frames[mark:] if f["type"] != "presence"]
        assert [(f["type"], f.get("code")) for f in got] == [("error", "no_such_room")]
        assert b.doors.cache.get(room, "bob") is None
        assert not b.hub.is_member(b._members[bob], room)
    finally:
        await a.close()
        await b.close()
        await store.close()
