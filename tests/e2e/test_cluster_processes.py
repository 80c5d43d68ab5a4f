"""Nodes as real `rawws serve` processes on one PostgreSQL and one Redis: one is SIGKILLed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.support.chat_client import ChatClient, close_quietly, connect_chat, new_user
from tests.support.chat_client import login as chat_login
from tests.support.nodes import Node, start_node
from tests.support.redis_server import RedisServer

PRESENCE_TTL_S = 2.0
HEARTBEAT_S = 0.25
WAIT_S = 30.0

StartNode = Callable[..., Awaitable[Node]]


@pytest.fixture
async def nodes(
    tmp_path: Path, postgres_url: str, redis_server: RedisServer
) -> AsyncIterator[StartNode]:
    started: list[Node] = []
    env = {
        "RAWWS_DB_URL": postgres_url,
        "RAWWS_BUS_URL": redis_server.url,
        "RAWWS_JWT_SECRET": "cluster-process-test-secret-" + "y" * 32,
        "RAWWS_PRESENCE_TTL_S": str(PRESENCE_TTL_S),
        "RAWWS_BUS_HEARTBEAT_S": str(HEARTBEAT_S),
        "RAWWS_ARGON2_TIME_COST": "1",
        "RAWWS_ARGON2_MEMORY_KIB": "8192",
        "RAWWS_ARGON2_PARALLELISM": "1",
        "RAWWS_REGISTRATIONS_PER_HOUR_PER_ADDRESS": "100000",  # every test client is 127.0.0.1
        "RAWWS_WEBSOCKETS_PER_ADDRESS": "100000",
    }

    async def start(*flags: str) -> Node:
        node = await start_node(
            tmp_path / f"node{len(started)}", *flags, port=0, env=env
        )
        started.append(node)
        return node

    yield start
    for node in started:
        await node.stop()


def assert_gapless(ids: list[int], first: int, last: int, who: str) -> None:
    assert ids == list(range(first, last + 1)), f"{who}: {ids}"


async def test_a_killed_nodes_users_leave_and_its_members_resume_on_another_node(
    nodes: StartNode,
) -> None:
    a, b = await nodes(), await nodes()
    ann = await connect_chat(a.port, await new_user(a.port, "ann"), "ann")
    bob = await connect_chat(b.port, await new_user(b.port, "bob"), "bob")
    ann_again: ChatClient | None = None
    try:
        # each reads the lobby from their own join on; ann is there first, so she also gets
        # bob's `joined` (as a member frame) in its place among the messages
        ann_from = (await ann.join("lobby"))["last_id"] + 1
        bob_from = (await bob.join("lobby"))["last_id"] + 1
        await ann.flood("lobby", 5, prefix="ann-")
        await bob.flood("lobby", 5, prefix="bob-")
        said = bob_from + 9  # the tenth message after bob's join
        await ann.wait_message_id("lobby", said)
        await bob.wait_message_id("lobby", said)
        assert_gapless(ann.entry_ids("lobby"), ann_from, said, "ann before the kill")
        assert_gapless(bob.entry_ids("lobby"), bob_from, said, "bob before the kill")
        last_seen_by_ann = ann.entry_ids("lobby")[-1]

        a.kill()
        killed = time.monotonic()
        await a.process.wait()
        # bob goes on talking while ann is cut off
        await bob.flood("lobby", 7, prefix="bob-late-")
        left = await bob.wait_frame(
            "presence", room="lobby", user="ann", event="left", timeout=WAIT_S
        )
        gone_after_s = time.monotonic() - killed
        assert left == {
            "type": "presence",
            "room": "lobby",
            "user": "ann",
            "event": "left",
        }
        start = len(bob.frames)
        await bob.send(type="who", room="lobby")
        assert (await bob.wait_frame("members", start=start, room="lobby"))[
            "users"
        ] == ["bob"]

        # ann reconnects to the surviving node and resumes with since: nothing missed, nothing twice
        ann_again = await connect_chat(b.port, await chat_login(b.port, "ann"), "ann")
        await ann_again.join("lobby", since=last_seen_by_ann)  # not her first: no event
        said += 7  # bob-late-: the 7 said while ann was cut off
        await ann_again.wait_message_id("lobby", said, timeout=WAIT_S)
        assert_gapless(
            ann.entry_ids("lobby") + ann_again.entry_ids("lobby"),
            ann_from,
            said,
            "ann across the kill",
        )
        await bob.wait_frame(
            "presence", room="lobby", user="ann", event="joined", start=start
        )
        await asyncio.sleep(HEARTBEAT_S * 4)
        about_ann = [
            f["event"] for f in bob.of_type("presence", room="lobby", user="ann")
        ]
        assert about_ann == ["left", "joined"], (
            about_ann
        )  # one left, no ghost, no double
        print(
            f"\npresence: a SIGKILLed node's user left after {gone_after_s:.2f} s"
            f" (presence_ttl_s={PRESENCE_TTL_S}, heartbeat {HEARTBEAT_S} s)"
        )
    finally:
        await close_quietly(*(c for c in (ann, bob, ann_again) if c is not None))


async def test_three_processes_every_member_gets_every_message_once_in_order(
    nodes: StartNode,
) -> None:
    """Each member joins in turn, so each gets the later ones' `joined` events, then every
    message: all of it without a gap or a double from its own join on, in id order."""
    started = [await nodes() for _ in range(3)]
    clients: list[ChatClient] = []
    joined_at: dict[str, int] = {}  # user → the lobby's last id when they joined
    try:
        for n, node in enumerate(started):
            for i in range(3):
                name = f"p{n}m{i}"
                client = await connect_chat(
                    node.port, await new_user(node.port, name), name
                )
                joined_at[name] = (await client.join("lobby"))["last_id"]
                clients.append(client)
        per_sender = 15  # within the per-connection burst: no rate limit in the way
        acked = await asyncio.gather(
            *(
                c.flood("lobby", per_sender, prefix=f"{c.user}-", window=5)
                for c in clients
            )
        )
        total = per_sender * len(clients)
        # every join was answered before anything was said: the messages follow the last join
        first, last = max(joined_at.values()) + 1, max(joined_at.values()) + total
        assert sorted(i for ids in acked for i in ids) == list(range(first, last + 1))
        await asyncio.gather(
            *(c.wait_message_id("lobby", last, timeout=WAIT_S) for c in clients)
        )
        for client in clients:
            assert_gapless(
                client.entry_ids("lobby"),
                joined_at[client.user] + 1,
                last,
                client.user,
            )
    finally:
        await close_quietly(*clients)


async def test_redis_killed_and_restarted_under_three_processes(
    nodes: StartNode, redis_server: RedisServer
) -> None:
    started = [await nodes() for _ in range(3)]
    clients: list[ChatClient] = []
    joined_at: dict[str, int] = {}  # user → the lobby's last id when they joined
    try:
        for n, node in enumerate(started):
            for i in range(2):
                name = f"r{n}m{i}"
                client = await connect_chat(
                    node.port, await new_user(node.port, name), name
                )
                joined_at[name] = (await client.join("lobby"))["last_id"]
                clients.append(client)
        per_sender = 40

        async def talk(client: ChatClient) -> list[int]:
            ids = []
            for i in range(
                per_sender
            ):  # 8 a second: under the per-connection rate limit
                ref = f"{client.user}-{i}"
                await client.say("lobby", f"{ref} text", ref=ref)
                ids.append((await client.wait_ack(ref, timeout=WAIT_S))["id"])
                await asyncio.sleep(0.125)
            return ids

        traffic = [asyncio.ensure_future(talk(c)) for c in clients]
        await asyncio.sleep(1.0)
        redis_server.kill()
        await asyncio.sleep(1.5)
        redis_server.start()
        acked = await asyncio.gather(*traffic)
        total = per_sender * len(clients)
        # the joins (each a `joined` event the earlier members get) all came before the talk
        first, last = max(joined_at.values()) + 1, max(joined_at.values()) + total
        assert sorted(i for ids in acked for i in ids) == list(range(first, last + 1))
        await asyncio.gather(
            *(c.wait_message_id("lobby", last, timeout=WAIT_S) for c in clients)
        )
        for client in clients:
            assert_gapless(
                client.entry_ids("lobby"),
                joined_at[client.user] + 1,
                last,
                client.user,
            )
        await asyncio.sleep(HEARTBEAT_S * 2)
        for node in started:
            log = node.log()
            assert log.count("bus is down") == 1 and log.count("bus is back") == 1, log[
                -3000:
            ]
        print(
            f"\nredis restart under 3 processes: {total} acked, {total * len(clients)} delivered"
            f" to {len(clients)} members, 0 lost, 0 duplicated"
        )
    finally:
        await close_quietly(*clients)
