"""The chat service's ordering guarantees on fake peers and a fake store: no socket, no SQLite.

``ChatHandler`` is driven the way the server drives it (``on_open``, ``on_message``,
``on_close``) with peers that record what they are sent and an in-memory store whose
commits and reads take a random number of loop turns, so replays, live delivery and
group commits interleave as they do under load. What must hold, for every member and
every room, whatever the interleaving (hypothesis):

* an ``ack`` comes only for a stored message, with its id;
* after each ``joined`` (``last_id`` L, asked ``since`` S), the member gets the room's
  messages with ids from min(S, L) + 1 (L + 1 without ``since``) on, each exactly once,
  in id order, with no gap, up to the room's last id (while it stays joined);
* a non-member gets no message of a room and no answer about it but ``not_joined``.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawws.chat.limits import ChatLimits
from rawws.chat.service import ChatHandler
from rawws.store import NewMessage, StoredMessage
from rawws.store.base import MEMBER, PUBLIC, Membership

UNLIMITED = ChatLimits(
    messages_per_s=1e9,
    message_burst=10**9,
    max_batch_messages=4,
    replay_page_messages=3,
)


class FakePeer:
    """A connection that records every text it is sent (shared frames included)."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.open = True
        self.backed_up = False
        self.frames: list[dict] = []

    def send_nowait(self, message: str) -> bool:
        self.frames.append(json.loads(message))
        return True

    def send_shared(self, text: str, frame: bytes) -> bool:
        return self.send_nowait(text)

    async def wait_writable(self) -> None:
        return None


class FakeStore:
    """Messages in memory, ids per room from 1; each call yields a random number of loop turns first."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.rooms: dict[str, list[StoredMessage]] = defaultdict(list)

    async def _turns(self) -> None:
        for _ in range(self.rng.randrange(4)):
            await asyncio.sleep(0)

    async def append_messages(self, batch: list[NewMessage]) -> list[StoredMessage]:
        await self._turns()
        stored = []
        for item in batch:
            room = self.rooms[item.room]
            stored.append(
                StoredMessage(item.room, len(room) + 1, item.user, item.text, item.ts)
            )
            room.append(stored[-1])
        await self._turns()  # committed, readable by others, before the writer hears back (as over a network)
        return stored

    async def last_message_id(self, room: str) -> int:
        await self._turns()
        return len(self.rooms[room])

    async def membership(self, room: str, user: str) -> Membership:
        """Every room here is public and everyone its member from its start (as version 8
        makes those who wrote in a room before): no ``joined`` event is ever stored here,
        and nobody is banned or muted."""
        await self._turns()
        return Membership(room, PUBLIC, MEMBER, 0)

    async def messages_after(
        self, room: str, after: int, limit: int
    ) -> list[StoredMessage]:
        await self._turns()
        return self.rooms[room][after : after + limit]

    async def unread(self, room: str, user: str, after: int, upto: int) -> int:
        """The SQL store's rule (``rawws.store.reads``): says of others in (after, upto]."""
        await self._turns()
        return sum(1 for m in self.rooms[room][after:upto] if m.user != user)

    async def messages_before(
        self, room: str, before: int | None, limit: int
    ) -> list[StoredMessage]:
        await self._turns()
        messages = (
            self.rooms[room]
            if before is None
            else self.rooms[room][: max(0, before - 1)]
        )
        return messages[-limit:]


@dataclass
class Scenario:
    handler: ChatHandler
    store: FakeStore
    peers: list[FakePeer] = field(default_factory=list)

    def send(self, peer: FakePeer, **frame: object) -> None:
        self.handler.on_message(peer, json.dumps(frame))


async def settle(handler: ChatHandler) -> None:
    """Until every commit, replay and query has finished."""
    for _ in range(1000):
        await handler.writer.flush()
        if not handler._tasks:
            await asyncio.sleep(0)
            if not handler._tasks and not handler.writer._pending:
                return
        await asyncio.sleep(0)
    raise AssertionError("the handler did not settle")


def check_member(peer: FakePeer, store: FakeStore) -> None:
    """Every `joined` → the messages that follow in that room are exactly min(since, L)+1 .. last, in order."""
    stretches: dict[
        str, tuple[int, list[int], bool]
    ] = {}  # room → (first expected id - 1, ids, still joined)
    finished: list[tuple[str, int, list[int], bool]] = []
    since_asked: dict[str, int | None] = {}
    for frame in peer.frames:
        kind, room = frame["type"], frame.get("room")
        if kind == "_join":  # our own marker: what was asked
            since_asked[room] = frame["since"]
        elif kind == "joined":
            since = since_asked.pop(room, None)
            start = frame["last_id"] if since is None else min(since, frame["last_id"])
            stretches[room] = (start, [], True)
        elif kind == "left":
            start, ids, _ = stretches.pop(room)
            finished.append((room, start, ids, False))
        elif kind == "message":
            assert room in stretches, (
                f"{peer.user} got a message of {room} without being in it: {frame}"
            )
            stretches[room][1].append(frame["id"])
        elif kind == "ack":
            stored = store.rooms[frame["room"]][frame["id"] - 1]
            assert stored.user == peer.user and frame["ref"] == stored.text, (
                frame,
                stored,
            )
    finished += [
        (room, start, ids, True) for room, (start, ids, _) in stretches.items()
    ]
    for room, start, ids, still_joined in finished:
        assert ids == list(range(start + 1, start + 1 + len(ids))), (
            f"{peer.user}@{room}: {start=} {ids=}"
        )
        if still_joined:
            assert start + len(ids) == len(store.rooms[room]), (
                f"{peer.user}@{room} missed the tail: {ids}"
            )


ROOMS = ("a", "b")
operation = st.one_of(
    st.tuples(st.just("say"), st.integers(0, 2), st.sampled_from(ROOMS)),
    st.tuples(
        st.just("join"),
        st.integers(0, 2),
        st.sampled_from(ROOMS),
        st.one_of(st.none(), st.integers(0, 12)),
    ),
    st.tuples(st.just("leave"), st.integers(0, 2), st.sampled_from(ROOMS)),
    st.tuples(st.just("turn"), st.integers(0, 5)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=st.lists(operation, max_size=40), seed=st.integers(0, 2**32 - 1))
def test_every_member_gets_every_message_of_its_rooms_once_in_order(
    operations: list[tuple], seed: int
) -> None:
    asyncio.run(run_scenario(operations, seed))


async def run_scenario(operations: list[tuple], seed: int) -> None:
    store = FakeStore(random.Random(seed))
    scenario = Scenario(ChatHandler(store, limits=UNLIMITED), store)  # type: ignore[arg-type]
    await scenario.handler.start()
    peers = [FakePeer(name) for name in ("ann", "bob", "cy")]
    joined: list[set[str]] = [set(), set(), set()]
    said = 0
    for peer in peers:
        scenario.handler.on_open(peer)
    for op in operations:
        if op[0] == "turn":
            for _ in range(op[1]):
                await asyncio.sleep(0)
            continue
        who, room = op[1], op[2]
        peer = peers[who]
        if op[0] == "say" and room in joined[who]:
            said += 1
            scenario.send(peer, type="say", room=room, text=f"t{said}", ref=f"t{said}")
        elif op[0] == "join" and room not in joined[who]:
            joined[who].add(room)
            peer.frames.append({"type": "_join", "room": room, "since": op[3]})
            fields = {} if op[3] is None else {"since": op[3]}
            scenario.send(peer, type="join", room=room, **fields)
        elif op[0] == "leave" and room in joined[who]:
            await settle(
                scenario.handler
            )  # a leave mid-replay ends that stretch early: checked apart
            joined[who].discard(room)
            scenario.send(peer, type="leave", room=room)
    await settle(scenario.handler)
    for peer in peers:
        errors = [f for f in peer.frames if f["type"] == "error"]
        assert all(f["code"] == "position_ahead" for f in errors), peer.frames
        check_ahead(peer.frames)
        check_member(peer, store)
    await scenario.handler.close()


def check_ahead(frames: list[dict]) -> None:
    """A join whose ``since`` is past the room's newest id is told so, right before its
    ``joined`` (which then starts from the newest); no other join is."""
    since: dict[str, int | None] = {}
    for index, frame in enumerate(frames):
        if frame["type"] == "_join":
            since[frame["room"]] = frame["since"]
        elif frame["type"] == "joined":
            asked = since[frame["room"]]
            ahead = asked is not None and asked > frame["last_id"]
            told = frames[index - 1].get("code") == "position_ahead"
            assert told == ahead, (frame, asked, frames[index - 1])


async def test_a_non_member_gets_no_message_and_only_not_joined_about_a_room() -> None:
    store = FakeStore(random.Random(1))
    handler = ChatHandler(store, limits=UNLIMITED)  # type: ignore[arg-type]
    await handler.start()
    ann, bob = FakePeer("ann"), FakePeer("bob")
    handler.on_open(ann)
    handler.on_open(bob)
    handler.on_message(ann, json.dumps({"type": "join", "room": "secret"}))
    await settle(handler)
    handler.on_message(
        ann, json.dumps({"type": "say", "room": "secret", "text": "plan", "ref": "p"})
    )
    for asked in ("who", "history"):
        handler.on_message(bob, json.dumps({"type": asked, "room": "secret"}))
    handler.on_message(
        bob, json.dumps({"type": "say", "room": "secret", "text": "hi", "ref": "b"})
    )
    await settle(handler)
    assert [f["type"] for f in bob.frames] == ["welcome", "error", "error", "error"]
    assert {f["code"] for f in bob.frames[1:]} == {"not_joined"}
    assert len(store.rooms["secret"]) == 1
    await handler.close()
