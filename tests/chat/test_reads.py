"""Read markers (``read``, ``joined``/``rooms``' ``last_read`` and ``unread``) and ``typing``,
through the chat service on SQLite and the real PostgreSQL, one node or two in-process
nodes on one store and a bus that loses nothing (``LossyWire`` with no drop).

The claims: a marker only moves forward (here, in the store, across nodes); it reaches
every connection of its user and nobody else's; it is stored in batches, not once per
``read``; ``unread`` counts the others' messages after it, the pending marker included;
a ``typing`` reaches the room's other users on every node, never the typist's own
connections nor a connection that has not joined, and is refused or dropped as documented.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawws.chat import wire as chat
from rawws.chat.codec import Marked, Typing, decode_event, encode_event
from rawws.chat.hub import Hub
from rawws.chat.service import ChatHandler
from rawws.chat.typing_relay import TypingRelay
from rawws.store import SqlStore, open_store, sqlite_url
from tests.chat.test_doors import Node, kind_of, opened, settle
from tests.chat.test_doors import (
    store_url as store_url,
)  # the fixture: SQLite, PostgreSQL
from tests.chat.test_moderation_stream import LossyWire
from tests.chat.test_service import UNLIMITED, FakePeer

NEVER_S = 3600.0  # a flush interval no test waits for: only close() or flush() writes


def of(peer: FakePeer, kind: str, room: str = "plaza") -> list[dict]:
    return [f for f in peer.frames if f["type"] == kind and f.get("room") == room]


def reads(peer: FakePeer, room: str = "plaza") -> list[int]:
    return [f["last_read"] for f in of(peer, "read", room)]


async def stored_marker(store: SqlStore, room: str, user: str) -> int:
    found = await store.membership(room, user)
    assert found is not None
    return found.last_read


class Spy:
    """Counts the real store's marker writes (and can make the next ones fail)."""

    def __init__(self, store: SqlStore) -> None:
        self.real = store.save_read_markers
        self.calls: list[list[tuple[str, str, int]]] = []
        self.fail = 0
        store.save_read_markers = self.save  # type: ignore[method-assign]

    async def save(self, marks: list[tuple[str, str, int]]) -> None:
        self.calls.append(marks)
        if self.fail:
            self.fail -= 1
            raise OSError("the database went away")
        await self.real(marks)


async def plaza(node: Node, *peers: FakePeer) -> None:
    for peer in peers:
        assert kind_of(await node.answer(peer, type="join", room="plaza")) == "joined"


async def test_a_marker_only_moves_forward_and_reaches_every_connection_of_its_user(
    store_url: str,
) -> None:
    store = await opened(store_url)
    node = Node(store)
    node.handler.markers.flush_s = NEVER_S
    try:
        ann, ann2, bob = node.connect("ann"), node.connect("ann"), node.connect("bob")
        await plaza(node, ann, ann2, bob)  # ann's joined is 1, bob's 2
        for n in range(3):  # 3, 4, 5
            await node.ask(bob, type="say", room="plaza", text=f"b{n}", ref=f"{n}")
        await node.ask(ann, type="read", room="plaza", id=4)
        assert reads(ann) == reads(ann2) == [4] and reads(bob) == []
        assert of(ann, "read")[0] == {"type": "read", "room": "plaza", "last_read": 4}
        for peer, older in ((ann2, 3), (ann, 4), (ann2, 2)):  # at or before it: nothing
            assert await node.ask(peer, type="read", room="plaza", id=older) == []
        await node.handler.markers.flush()
        assert await stored_marker(store, "plaza", "ann") == 4
        await store.save_read_markers([("plaza", "ann", 3)])  # a late, older write
        assert await stored_marker(store, "plaza", "ann") == 4
        await node.ask(ann2, type="read", room="plaza", id=5)
        assert reads(ann) == reads(ann2) == [4, 5]
        await node.handler.markers.flush()
        assert await stored_marker(store, "plaza", "ann") == 5
        assert await stored_marker(store, "plaza", "bob") == 0
    finally:
        await node.handler.close()
        await store.close()


async def test_a_read_past_what_was_sent_is_bad_field_and_the_connection_goes_on(
    store_url: str,
) -> None:
    store = await opened(store_url)
    node = Node(store)
    try:
        ann, cy = node.connect("ann"), node.connect("cy")
        await plaza(node, ann)
        await node.ask(ann, type="say", room="plaza", text="hi", ref="h")  # id 2
        for frame in (
            {"id": 3},  # the newest is 2
            {"id": 0},
            {"id": "2"},
            {},
        ):
            got = await node.answer(ann, type="read", room="plaza", **frame)
            assert kind_of(got) == chat.BAD_FIELD, frame
        refused = await node.answer(cy, type="read", room="plaza", id=1)
        assert kind_of(refused) == chat.NOT_JOINED  # never joined: refused first
        assert reads(ann) == [] and reads(cy) == []
        assert kind_of(await node.answer(ann, type="read", room="plaza", id=2)) == (
            "read"
        )
        assert ann.open and reads(ann) == [2]
    finally:
        await node.handler.close()
        await store.close()


async def test_unread_in_joined_and_rooms_counts_others_says_after_the_marker(
    store_url: str,
) -> None:
    """Own messages and membership events never count; the pending (unstored) marker does."""
    store = await opened(store_url)
    node = Node(store)
    node.handler.markers.flush_s = NEVER_S
    try:
        ann, bob = node.connect("ann"), node.connect("bob")
        await plaza(node, ann, bob)  # joined ann 1, joined bob 2
        said = [(ann, "a"), (bob, "b"), (bob, "c"), (bob, "d"), (ann, "e")]  # 3..7
        for peer, text in said:
            await node.ask(peer, type="say", room="plaza", text=text, ref=text)
        again = node.connect("ann")
        joined = await node.answer(again, type="join", room="plaza")
        assert (joined["last_id"], joined["last_read"], joined["unread"]) == (7, 1, 3)
        await node.ask(again, type="read", room="plaza", id=5)  # pending, not stored
        third = node.connect("ann")
        joined = await node.answer(third, type="join", room="plaza")
        assert (joined["last_read"], joined["unread"]) == (5, 1)
        assert await stored_marker(store, "plaza", "ann") == 0  # not written yet

        async def view(peer: FakePeer) -> dict[str, Any]:
            listed = (await node.answer(peer, type="rooms"))["rooms"]
            return next(v for v in listed if v["room"] == "plaza")

        assert (await view(ann))["last_read"] == 5 and (await view(ann))["unread"] == 1
        await node.handler.markers.flush()
        assert await stored_marker(store, "plaza", "ann") == 5
        assert {k: (await view(ann))[k] for k in ("last_read", "unread")} == {
            "last_read": 5,
            "unread": 1,
        }
        mine = await view(bob)  # from his joined (2): ann's a and e
        assert (mine["last_read"], mine["unread"]) == (2, 2)
        outsider = node.connect("cy")  # not a member: no marker, no count
        assert "unread" not in await view(outsider)
    finally:
        await node.handler.close()
        await store.close()


async def test_the_marker_survives_a_restart(store_url: str) -> None:
    """Pending markers are written when the node closes, and read back at the next join."""
    store = await opened(store_url)
    node = Node(store)
    node.handler.markers.flush_s = NEVER_S
    ann, bob = node.connect("ann"), node.connect("bob")
    await plaza(node, ann, bob)
    for text in "xyz":  # 3, 4, 5
        await node.ask(bob, type="say", room="plaza", text=text, ref=text)
    await node.ask(ann, type="read", room="plaza", id=4)
    await node.handler.close()
    await store.close()
    store = await open_store(store_url)
    node = Node(store)
    try:
        joined = await node.answer(node.connect("ann"), type="join", room="plaza")
        assert (joined["last_read"], joined["unread"]) == (4, 1)
    finally:
        await node.handler.close()
        await store.close()


async def test_reads_of_many_connections_are_one_write(tmp_path: Path) -> None:
    """300 reads on 20 connections of 10 users, then the close: one write of 10 markers."""
    store = await opened(tmp_path)
    for n in range(6):
        await store.create_user(f"u{n}", "x")
    spy = Spy(store)
    node = Node(store)
    node.handler.markers.flush_s = NEVER_S
    users = ["ann", "bob", "cy", "dan", *(f"u{n}" for n in range(6))]
    try:
        peers = [node.connect(user) for user in users * 2]
        await plaza(node, *peers)
        for n in range(10):
            await node.ask(peers[0], type="say", room="plaza", text=f"m{n}", ref=f"{n}")
        newest = await store.last_message_id("plaza")
        rng = random.Random(7)
        for _ in range(300):
            peer = rng.choice(peers)
            await node.ask(peer, type="read", room="plaza", id=rng.randint(1, newest))
        assert spy.calls == []  # not one write per read
        await node.handler.close()
        moved = {p.user: reads(p)[-1] for p in peers if reads(p)}  # told, so stored
        assert len(moved) >= 5
        assert len(spy.calls) == 1 and sorted(spy.calls[0]) == sorted(
            ("plaza", user, marker) for user, marker in moved.items()
        )
        for user in users:
            assert await stored_marker(store, "plaza", user) == moved.get(user, 0)
    finally:
        await store.close()


async def test_the_writer_flushes_by_itself_and_retries_a_failed_write(
    tmp_path: Path,
) -> None:
    store = await opened(tmp_path)
    spy = Spy(store)
    node = Node(store)
    markers = node.handler.markers
    markers.flush_s = 0.01
    try:
        ann, bob = node.connect("ann"), node.connect("bob")
        await plaza(node, ann, bob)
        await node.ask(bob, type="say", room="plaza", text="x", ref="x")  # 3
        spy.fail = 1
        await node.ask(ann, type="read", room="plaza", id=3)
        async with asyncio.timeout(10):  # the first write fails, the next one stores it
            while await stored_marker(store, "plaza", "ann") != 3:
                await asyncio.sleep(0.01)
        assert len(spy.calls) >= 2 and spy.calls[0] == spy.calls[1]
        markers.flush_s = NEVER_S
        markers.max_pending = 2  # a store down for long: the oldest markers go first
        for room in ("r1", "r2", "r3"):
            markers.pending[(room, "ann")] = 1
        spy.fail = 1
        await markers.flush()
        assert list(markers.pending) == [("r2", "ann"), ("r3", "ann")]
        assert markers.failed_flushes == 1
    finally:
        await node.handler.close()
        await store.close()


def connect_nodes(store: SqlStore, count: int) -> tuple[list[ChatHandler], LossyWire]:
    wire = LossyWire(random.Random(0), drop=0.0)
    handlers = [
        ChatHandler(store, bus=wire.endpoint(f"n{i}"), node=f"n{i}", limits=UNLIMITED)  # type: ignore[arg-type]
        for i in range(count)
    ]
    return handlers, wire


def deliver_all(wire: LossyWire) -> None:
    """Everything in flight arrives, in the order it was sent."""
    while wire.pending:
        now, wire.pending = wire.pending, []
        for node, data in now:
            wire.receivers[node](data)


async def test_a_marker_set_on_one_node_reaches_the_users_connections_on_the_other(
    store_url: str,
) -> None:
    store = await opened(store_url)
    (a, b), wire = connect_nodes(store, 2)
    for handler in (a, b):
        await handler.start()
        handler.markers.flush_s = NEVER_S
    na, nb = Node.__new__(Node), Node.__new__(Node)
    na.handler, nb.handler = a, b
    try:
        ann_a, ann_b, bob_b = na.connect("ann"), nb.connect("ann"), nb.connect("bob")
        other = na.connect("ann")  # in no room: a marker still reaches it
        await plaza(na, ann_a)
        await plaza(nb, ann_b, bob_b)
        deliver_all(wire)
        for text in "xyz":
            await nb.ask(bob_b, type="say", room="plaza", text=text, ref=text)
        deliver_all(wire)
        await settle(a)
        newest = max(f["id"] for f in of(ann_a, "message"))
        await na.ask(ann_a, type="read", room="plaza", id=newest - 1)
        deliver_all(wire)
        assert reads(ann_a) == reads(ann_b) == reads(other) == [newest - 1]
        assert reads(bob_b) == []
        # b's joined counts from the marker a set (heard, not stored yet)
        late = nb.connect("ann")
        joined = await nb.answer(late, type="join", room="plaza")
        assert (joined["last_read"], joined["unread"]) == (newest - 1, 1)
        # node b heard it: an older read there is nothing, a newer one goes everywhere
        assert await nb.ask(ann_b, type="read", room="plaza", id=newest - 2) == []
        await nb.ask(ann_b, type="read", room="plaza", id=newest)
        deliver_all(wire)
        assert reads(ann_a) == reads(ann_b) == [newest - 1, newest]
        await b.markers.flush()  # b writes newest, then a writes newest - 1: stays
        await a.markers.flush()
        assert await stored_marker(store, "plaza", "ann") == newest
    finally:
        await a.close()
        await b.close()
        await store.close()


async def test_typing_reaches_the_rooms_other_users_on_both_nodes_only(
    store_url: str,
) -> None:
    store = await opened(store_url)
    (a, b), wire = connect_nodes(store, 2)
    now = [100.0]
    for handler in (a, b):
        await handler.start()
        handler.typists.clock = lambda: now[0]
    na, nb = Node.__new__(Node), Node.__new__(Node)
    na.handler, nb.handler = a, b
    try:
        ann_a, ann_b = na.connect("ann"), nb.connect("ann")
        bob_a, cy_b = na.connect("bob"), nb.connect("cy")
        dan_a = na.connect("dan")  # connected, in another room: never hears plaza
        await plaza(na, ann_a, bob_a)
        await plaza(nb, ann_b, cy_b)
        await na.answer(dan_a, type="join", room="elsewhere")
        deliver_all(wire)
        await na.ask(ann_a, type="typing", room="plaza")
        deliver_all(wire)
        frame = {"type": "typing", "room": "plaza", "user": "ann", "expires_in": 5}
        assert of(bob_a, "typing") == [frame] and of(cy_b, "typing") == [frame]
        for peer in (ann_a, ann_b, dan_a):
            assert [f for f in peer.frames if f["type"] == "typing"] == []
        # within the second: dropped without an answer
        assert await na.ask(ann_a, type="typing", room="plaza") == []
        now[0] += 1.0
        await na.ask(ann_a, type="typing", room="plaza")
        deliver_all(wire)
        assert len(of(bob_a, "typing")) == len(of(cy_b, "typing")) == 2
        await nb.ask(cy_b, type="typing", room="plaza")
        deliver_all(wire)
        assert of(ann_a, "typing") == of(ann_b, "typing") == of(bob_a, "typing")[2:]
        assert of(cy_b, "typing")[2:] == []
        refused = await na.answer(dan_a, type="typing", room="plaza")
        assert kind_of(refused) == chat.NOT_JOINED
    finally:
        await a.close()
        await b.close()
        await store.close()


async def test_a_muted_member_is_refused_typing(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    node = Node(store)
    try:
        ann, bob = node.connect("ann"), node.connect("bob")
        await node.answer(ann, type="create", room="plaza", kind="public")
        await plaza(node, ann, bob)
        muted = await node.answer(
            ann, type="mute", room="plaza", user="bob", seconds=60
        )
        assert muted["type"] == "moderated"
        refused = await node.answer(bob, type="typing", room="plaza")
        assert kind_of(refused) == "muted" and refused["until"] > 0
        assert of(ann, "typing") == []
    finally:
        await node.handler.close()
        await store.close()


def test_the_typing_rate_map_forgets_and_is_bounded() -> None:
    """Entries past the interval are dropped as new ones come; never more than max_tracked."""
    now = [0.0]
    relay = TypingRelay(Hub(), _FeedStub(), "n", lambda: now[0])  # type: ignore[arg-type]
    relay.max_tracked = 5
    for n in range(50):
        assert relay._allowed(f"r{n}", "ann")
        assert len(relay.last) <= 5
    assert not relay._allowed("r49", "ann")
    now[0] += 1.0
    assert relay._allowed("new", "ann") and list(relay.last) == [("new", "ann")]


class _FeedStub:
    on_typing: object = None

    def tell(self, event: object) -> None:
        pass


def test_the_bus_events_round_trip_and_bad_ones_are_refused() -> None:
    for event in (Marked("n1", "plaza", "ann", 7), Typing("n1", "plaza", "ann")):
        assert decode_event(encode_event(event)) == event
    for body in (
        {"k": "r", "r": "plaza", "u": "ann", "i": 0},
        {"k": "r", "r": "plaza", "u": "ann"},
        {"k": "y", "r": "plaza", "u": ""},
        {"k": "y", "r": "x" * 40, "u": "ann"},
    ):
        assert decode_event(json.dumps({"v": 1, "n": "n1", **body})) is None


# -- the property ------------------------------------------------------------------------

READ_OPS = st.lists(
    st.tuples(
        st.sampled_from(("read", "read", "read", "flush", "say")),
        st.integers(0, 3),  # which connection (0-2 ann's, 3 bob's)
        st.integers(1, 12),  # the id
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=READ_OPS)
def test_the_stored_marker_is_the_largest_accepted_read(
    ops: list[tuple[str, int, int]],
) -> None:
    """Reads in any order from several connections, flushes anywhere: the stored marker
    is the largest id accepted (at most what that connection was sent), never less."""
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(marker_scenario(Path(directory), ops))


async def marker_scenario(directory: Path, ops: list[tuple[str, int, int]]) -> None:
    store = await opened(sqlite_url(directory))
    node = Node(store)
    node.handler.markers.flush_s = NEVER_S
    try:
        peers = [node.connect(u) for u in ("ann", "ann", "ann", "bob")]
        await plaza(node, *peers)  # ann's joined 1, bob's 2
        accepted = {"ann": 1, "bob": 2}  # their start
        for op, who, wanted in ops:
            peer = peers[who]
            if op == "say":
                await node.ask(peer, type="say", room="plaza", text="t", ref="t")
            elif op == "flush":
                await node.handler.markers.flush()
            else:
                sent = node.handler._members[peer].last_ids["plaza"]  # type: ignore[index]
                got = await node.ask(peer, type="read", room="plaza", id=wanted)
                if wanted > sent:
                    assert [f["code"] for f in got] == [chat.BAD_FIELD]
                else:
                    accepted[peer.user] = max(accepted[peer.user], wanted)
        await node.handler.close()
        for user, best in accepted.items():
            stored = await store.membership("plaza", user)
            assert stored is not None and stored.read_upto == best
    finally:
        await store.close()
