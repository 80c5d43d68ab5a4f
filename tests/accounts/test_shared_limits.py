"""The cluster's shared counts on a real ``redis-server``: token buckets, and open connections with leases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from rawws.accounts.shared import SharedState, SharedUnavailable
from rawws.accounts.shared_connections import SharedConnections
from rawws.errors import HttpError
from rawws.server.limits import ConnectionLimits
from tests.support.helpers import wait_for_condition
from tests.support.redis_server import RedisServer

TIMEOUT_S = 1.0
# Keeps Redis busy for ARGV[1] microseconds: every other client waits (a stalled Redis).
BUSY_SCRIPT = """
local start = redis.call('TIME')
while true do
  local now = redis.call('TIME')
  if (now[1] - start[1]) * 1000000 + (now[2] - start[2]) > tonumber(ARGV[1]) then
    return 0
  end
end
"""


@pytest.fixture
async def clients(redis_server: RedisServer) -> AsyncIterator[list[aioredis.Redis]]:
    """Two clients: two nodes' views of one Redis."""
    made = [
        aioredis.Redis.from_url(redis_server.url, socket_timeout=TIMEOUT_S)
        for _ in range(2)
    ]
    yield made
    for client in made:
        await client.aclose()


async def test_a_bucket_is_shared_by_the_nodes(clients: list[aioredis.Redis]) -> None:
    nodes = [SharedState(client, TIMEOUT_S) for client in clients]
    waits = [await nodes[n % 2].take("ticket", "ada", 3, 60.0) for n in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert all(0.0 < wait <= 20.0 for wait in waits[3:])  # one token back in 60 / 3 s
    assert await nodes[1].take("ticket", "bob", 3, 60.0) == 0.0  # a key of its own
    assert await nodes[0].take("registration", "ada", 3, 60.0) == 0.0  # a kind too


async def test_a_bucket_refills(clients: list[aioredis.Redis]) -> None:
    state = SharedState(clients[0], TIMEOUT_S)
    assert await state.take("login", "k", 1, 0.2) == 0.0
    wait = await state.take("login", "k", 1, 0.2)
    assert 0.0 < wait <= 0.2
    await asyncio.sleep(wait + 0.05)
    assert await state.take("login", "k", 1, 0.2) == 0.0


async def test_an_unreachable_redis_is_shared_unavailable(
    redis_server: RedisServer,
) -> None:
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=TIMEOUT_S)
    redis_server.stop()
    try:
        with pytest.raises(SharedUnavailable):
            await SharedState(client, TIMEOUT_S).take("ticket", "ada", 3, 60.0)
    finally:
        await client.aclose()


async def test_connections_are_counted_across_nodes_and_released(
    clients: list[aioredis.Redis],
) -> None:
    nodes = [SharedConnections(client, TIMEOUT_S) for client in clients]
    for node in nodes:
        await node.start()
    try:
        admitted = [
            await nodes[n % 2].admit("ada", f"192.0.2.{n}", 2, 100) for n in range(3)
        ]
        assert admitted[0] is not None and admitted[1] is not None
        assert admitted[2] is None  # Ada holds two, one on each node
        assert await nodes[0].admit("bob", "192.0.2.9", 2, 100) is not None
        admitted[0]()  # one of Ada's ends on node 0: node 1 may admit her again
        await wait_for_condition(lambda: not nodes[0]._tasks, what="the count out")
        assert await nodes[1].admit("ada", "192.0.2.7", 2, 100) is not None
        # Per address, without a user (an /echo client).
        echo = [await nodes[n % 2].admit(None, "198.51.100.1", 2, 3) for n in range(4)]
        assert [r is not None for r in echo] == [True, True, True, False]
    finally:
        for node in nodes:
            await node.close()


async def test_a_dead_nodes_connections_stop_counting_when_its_lease_ends(
    clients: list[aioredis.Redis],
) -> None:
    dead = SharedConnections(clients[0], TIMEOUT_S, lease_s=0.3)
    alive = SharedConnections(clients[1], TIMEOUT_S, lease_s=0.3)
    await dead.start()
    await alive.start()
    try:
        assert await dead.admit("ada", "192.0.2.1", 1, 100) is not None
        assert await alive.admit("ada", "192.0.2.2", 1, 100) is None
        assert dead._renewer is not None
        dead._renewer.cancel()  # the node is gone: nobody renews its lease, nobody counts it out

        async def admitted() -> bool:
            return await alive.admit("ada", "192.0.2.2", 1, 100) is not None

        for _ in range(100):
            if await admitted():
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the dead node's connection still counts")
        # Its field is gone from the hash; the live node's stays, with a TTL.
        key = alive._key("user", "ada")
        assert await clients[1].hgetall(key) == {alive.node.encode(): b"1"}
        assert 0 < await clients[1].pttl(key) <= alive.key_ttl_ms
    finally:
        await alive.close()
        await dead.close()


async def test_without_redis_the_nodes_own_limit_holds(
    redis_server: RedisServer,
) -> None:
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=TIMEOUT_S)
    shared = SharedConnections(client, TIMEOUT_S)
    await shared.start()
    redis_server.stop()
    limits = ConnectionLimits(per_user=2, per_address=100)
    limits.shared = shared
    try:
        releases = [
            await limits.admit_everywhere("ada", f"192.0.2.{n}:1") for n in range(2)
        ]
        assert shared.degraded == 2  # admitted on this node's count alone
        with pytest.raises(HttpError) as refused:
            await limits.admit_everywhere("ada", "192.0.2.9:1")
        assert refused.value.status == 429
        for release in releases:
            release()
            release()  # once only
        assert limits.open_for("ada") == 0
    finally:
        await shared.close()
        await client.aclose()


async def test_a_lost_answer_takes_no_slot_for_good(
    clients: list[aioredis.Redis],
) -> None:
    """Redis is busy past the call timeout: the admit script runs after the node gave up on it
    (and admitted on its own count). The next renewal writes the node's true count: nothing is left."""
    node = SharedConnections(
        clients[0], 0.2
    )  # renews every 5 s: the test renews by hand
    other = SharedConnections(clients[1], TIMEOUT_S)
    await node.start()
    await other.start()
    try:
        # One admit first, so Redis has the script (a queued EVALSHA must find it).
        assert await node.admit("bob", "192.0.2.9", 5, 100) is not None
        busy = asyncio.create_task(clients[1].eval(BUSY_SCRIPT, 0, 500_000))
        await asyncio.sleep(
            0.05
        )  # Redis is in the busy script: the admit waits behind it
        release = await node.admit("ada", "192.0.2.1", 1, 100)
        await busy
        assert release is not None and node.degraded == 1  # timed out: its own count
        release()  # and the connection ends at once
        key = node._key("user", "ada")
        for _ in range(100):  # the admit script has run after the busy one
            if await clients[1].hget(key, node.node) == b"1":
                break
            await asyncio.sleep(0.05)
        assert (
            await other.admit("ada", "192.0.2.2", 1, 100) is None
        )  # a slot taken for nothing
        await node._renew()
        assert await clients[1].hget(key, node.node) is None
        assert await other.admit("ada", "192.0.2.2", 1, 100) is not None
    finally:
        await node.close()
        await other.close()
