"""The chat's "done when" scenario (issue 24), the same on each transport: WebSocket (``/ws``),
Server-Sent Events (``GET /sse``) and long-polling (``GET /poll``), both with ``POST /send``.

Two real `rawws serve` nodes share one real PostgreSQL database and a real
``redis-server`` bus. User A reaches the chat over the transport under test,
the others over WebSocket, so every step crosses the transports as well as the
nodes:

1. A (node 1) and B (node 2) talk in a room: each hears the other, A gets the
   ``ack`` of its own ``say`` (by ``ref``) before the message.
2. A's connection drops; B says N messages; A comes back **on the other node**
   with its position (SSE: ``Last-Event-ID`` = the last ``id:`` seen; polling:
   ``last_event_id`` = the last answer's ``position``; WebSocket: ``join`` with
   ``since``) and gets exactly the ids it missed, once each, in order.
3. A room's owner kicks A from a private room: A is told (``removed``), its
   ``say`` there is refused, and a resume with a position from before the kick
   is answered ``no_such_room`` for that room and delivers nothing of it.

The two nodes, the database and Redis are shared by every case of the module
(each case has users and rooms of its own), so the file starts them once.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.support.chat_client import ChatClient, connect_chat, new_user
from tests.support.nodes import Node, node_starter
from tests.support.postgres import PostgresCluster, new_database
from tests.support.redis_server import RedisServer, redis_binary
from tests.support.transport_clients import PollClient, SseClient

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET = "transports-scenario-secret-" + "t" * 32
TRANSPORTS = ["websocket", "sse", "poll"]
MISSED = 5  # what B says while A is away
WAIT_S = 20.0  # the bound on any one thing the scenario waits for

Client = ChatClient | SseClient | PollClient
_numbers = itertools.count(1)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def nodes(
    tmp_path_factory: pytest.TempPathFactory, postgres_cluster: PostgresCluster
) -> AsyncIterator[tuple[Node, Node]]:
    """Two nodes on one new database and one Redis, for the whole module."""
    redis = RedisServer(redis_binary(), tmp_path_factory.mktemp("redis"))
    redis.start()
    try:
        env = {
            "RAWWS_DB_URL": await new_database(postgres_cluster),
            "RAWWS_BUS_URL": redis.url,
            "RAWWS_JWT_SECRET": SECRET,
            "RAWWS_REGISTRATIONS_PER_HOUR_PER_ADDRESS": "100000",  # every client is 127.0.0.1
            "RAWWS_LOGINS_PER_MINUTE_PER_ADDRESS": "100000",
        }
        async with node_starter(Path(tmp_path_factory.mktemp("nodes")), env) as start:
            yield await start(), await start()
    finally:
        redis.stop()


async def accounts(node: Node, *roles: str) -> list[tuple[str, str]]:
    """A new user per role, with a name no other case uses: (name, access token) each."""
    number = next(_numbers)
    made = []
    for role in roles:
        name = f"{role}-{number}"
        made.append((name, await new_user(node.port, name)))
    return made


# -- the transport under test ------------------------------------------------------------


async def open_member(
    transport: str,
    node: Node,
    account: tuple[str, str],
    position: str | None = None,
    *,
    in_header: bool = False,
) -> Client:
    """A's connection over ``transport`` on ``node``, resumed at ``position`` if given.

    SSE sends it as ``Last-Event-ID``; polling in the query's ``last_event_id``, or in the
    header too with ``in_header``. A WebSocket resumes as a page does: a ``join`` with
    ``since`` per room of its position.
    """
    user, token = account
    if transport == "sse":
        return await SseClient.open(node.port, token, user, last_event_id=position)
    if transport == "poll":
        return await PollClient.open(
            node.port, token, user, last_event_id=position, in_header=in_header
        )
    client = await connect_chat(node.port, token, user)
    for room, since in parse(position or ""):
        await client.send(type="join", room=room, since=since, ref=f"resume {room}")
    return client


def position_of(client: Client) -> str:
    """Where ``client`` would resume: the last ``id:`` (SSE), the last answer's ``position``
    (polling), or, for a WebSocket, what its own frames say (each room it joined and is still
    in, with the last id it got there, or the room's ``last_id`` at the join if none; a
    room joined with ``since`` counts once its replay is read)."""
    if isinstance(client, SseClient):
        return client.last_event_id
    if isinstance(client, PollClient):
        return client.position
    rooms: dict[str, int] = {}
    for frame in client.frames:
        room = str(frame.get("room"))
        if frame["type"] == "joined":
            rooms.setdefault(room, frame["last_id"])
        elif frame["type"] in ("left", "removed"):
            rooms.pop(room, None)
        elif frame["type"] in ("message", "member") and room in rooms:
            rooms[room] = frame["id"]
    return ",".join(f"{room}:{last}" for room, last in rooms.items())


def parse(position: str) -> list[tuple[str, int]]:
    parts = [part.rpartition(":") for part in position.split(",") if part]
    return [(room, int(last)) for room, _, last in parts]


async def join(client: Client, room: str) -> dict[str, Any]:
    start = len(client.frames)
    await client.send(type="join", room=room)
    return await client.wait_frame("joined", room=room, start=start, timeout=WAIT_S)


async def say(client: Client, room: str, text: str, ref: str) -> int:
    """``say`` and its ``ack``: the message's id."""
    await client.send(type="say", room=room, text=text, ref=ref)
    ack = await client.wait_frame("ack", ref=ref, timeout=WAIT_S)
    assert ack["room"] == room, ack
    return int(ack["id"])


async def refused(client: Client, room: str, ref: str) -> dict[str, Any]:
    """A ``say`` in ``room`` that must be refused: the ``error`` carrying its ``ref``."""
    await client.send(type="say", room=room, text="may I?", ref=ref)
    error = await client.wait_frame("error", ref=ref, timeout=WAIT_S)
    assert not client.of_type("ack", ref=ref), client.frames[-5:]
    return error


async def close_all(*clients: Client | None) -> None:
    for client in clients:
        if client is not None:
            await client.close()


# -- the scenario ------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_and_b_hear_each_other_across_nodes_and_transports(
    nodes: tuple[Node, Node], transport: str
) -> None:
    one, two = nodes
    ann, bob = await accounts(one, f"ann-{transport}", f"bob-{transport}")
    room = f"talk-{transport}"
    a: Client | None = None
    b: ChatClient | None = None
    try:
        a = await open_member(transport, one, ann)
        b = await connect_chat(two.port, bob[1], bob[0])
        first = (await join(a, room))["last_id"] + 1
        await join(b, room)

        said = await say(a, room, "hello from A", "a1")
        ack = a.of_type("ack", ref="a1")[0]
        mine = await a.wait_frame("message", room=room, id=said, timeout=WAIT_S)
        assert a.frames.index(ack) < a.frames.index(mine)  # the ack first
        assert (mine["user"], mine["text"]) == (ann[0], "hello from A")
        heard = await b.wait_frame("message", room=room, id=said, timeout=WAIT_S)
        assert (heard["user"], heard["text"]) == (ann[0], "hello from A")

        answer = await say(b, room, "hello from B", "b1")
        got = await a.wait_frame("message", room=room, id=answer, timeout=WAIT_S)
        assert (got["user"], got["text"]) == (bob[0], "hello from B")
        # every entry of the room from A's join on (B's join, A's say, B's say), once, in order
        assert a.entry_ids(room) == list(range(first, answer + 1)), a.frames
        assert position_of(a) == f"{room}:{answer}"
    finally:
        await close_all(a, b)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_dropped_member_resumes_on_the_other_node_with_exactly_what_it_missed(
    nodes: tuple[Node, Node], transport: str
) -> None:
    one, two = nodes
    ann, bob = await accounts(one, f"ann-{transport}", f"bob-{transport}")
    room = f"resume-{transport}"
    a: Client | None = None
    again: Client | None = None
    b: ChatClient | None = None
    try:
        a = await open_member(transport, one, ann)
        b = await connect_chat(two.port, bob[1], bob[0])
        await join(a, room)
        await join(b, room)
        await say(a, room, "before the drop", "a1")
        seen = await say(b, room, "seen before the drop", "b1")
        await a.wait_frame("message", room=room, id=seen, timeout=WAIT_S)
        position = position_of(a)
        assert position == f"{room}:{seen}"  # the last id A got, nothing more

        await a.close()  # the stream is cut; polling just stops
        missed = [await say(b, room, f"missed {n}", f"m{n}") for n in range(MISSED)]
        # nothing but B's messages took an id meanwhile
        assert missed == list(range(seen + 1, seen + 1 + MISSED))

        again = await open_member(transport, two, ann, position)  # the other node
        if isinstance(again, SseClient):  # the first event already carries the position
            assert again.events[0].id == position
        await again.wait_frame("joined", room=room, timeout=WAIT_S)
        await again.wait_frame("message", room=room, id=missed[-1], timeout=WAIT_S)
        live = await say(b, room, "after the return", "b2")
        await again.wait_frame("message", room=room, id=live, timeout=WAIT_S)
        assert again.entry_ids(room) == [*missed, live], again.frames
        texts = [m["text"] for m in again.messages(room)]
        assert texts == [*(f"missed {n}" for n in range(MISSED)), "after the return"]
        assert position_of(again) == f"{room}:{live}"
    finally:
        await close_all(a, again, b)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_kicked_member_is_told_refused_and_not_resumed_into_the_room(
    nodes: tuple[Node, Node], transport: str
) -> None:
    one, two = nodes
    ann, cy = await accounts(one, f"ann-{transport}", f"cy-{transport}")
    hall = f"hall-{transport}"
    a: Client | None = None
    again: Client | None = None
    owner: ChatClient | None = None
    try:
        owner = await connect_chat(one.port, cy[1], cy[0])
        a = await open_member(transport, two, ann)  # the kick crosses the bus
        await join(a, hall)
        await owner.send(type="create", room="den", kind="private", ref="c")
        den = (await owner.wait_frame("created", ref="c", timeout=WAIT_S))["room"]
        await join(owner, den)
        await owner.send(type="invite", room=den, user=ann[0], ref="i")
        await owner.wait_frame("invited", ref="i", timeout=WAIT_S)
        await a.wait_frame("invitation", room=den, by=cy[0], timeout=WAIT_S)
        await join(a, den)
        before = await say(owner, den, "before the kick", "o1")
        await a.wait_frame("message", room=den, id=before, timeout=WAIT_S)
        old = position_of(a)  # names the den, which A may not enter again
        assert [room for room, _ in parse(old)] == [hall, den], old
        assert parse(old)[1] == (den, before)

        await owner.send(type="kick", room=den, user=ann[0], ref="k")
        kick = (await owner.wait_frame("moderated", ref="k", timeout=WAIT_S))["id"]
        removed = await a.wait_frame("removed", room=den, timeout=WAIT_S)
        assert (removed["id"], removed["reason"], removed["by"]) == (
            kick,
            "kicked",
            cy[0],
        )
        assert (await refused(a, den, "late"))["code"] == "not_joined"
        assert den not in [room for room, _ in parse(position_of(a))]
        await a.close()

        # Back on the owner's node with the position from before the kick.
        again = await open_member(transport, one, ann, old, in_header=True)
        await again.wait_frame("joined", room=hall, timeout=WAIT_S)
        no_room = await again.wait_frame("error", code="no_such_room", timeout=WAIT_S)
        assert den in no_room["message"], no_room
        after = await say(owner, den, "after the kick", "o2")
        # Fanned out on this node to every member there (the owner's own copy among them) ...
        await owner.wait_frame("message", room=den, id=after, timeout=WAIT_S)
        # ... so an answer A gets after this comes behind anything of it A were sent.
        assert (await refused(again, den, "again"))["code"] == "not_joined"
        assert not [f for f in again.frames if f.get("room") == den], again.frames
        assert den not in [room for room, _ in parse(position_of(again))]
    finally:
        await close_all(a, again, owner)
