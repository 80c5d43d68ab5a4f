"""A stalled Redis costs one timeout a pause, not one per login, ticket or upgrade.

Found from outside: with Redis stopped by SIGSTOP, every login, ticket and upgrade
waited the bus timeout (1 s) before the node's own limit applied. The breaker is
tested with bytes-free calls and a clock of its own; then on a real, stalled
``redis-server``, counting the commands Redis ran once it woke.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from rawws.accounts.shared import Breaker, SharedState, SharedUnavailable
from rawws.accounts.shared_connections import SharedConnections
from tests.support.redis_server import RedisServer

TIMEOUT_S = 0.3


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_closed_it_lets_every_call_through() -> None:
    breaker = Breaker(1.0, Clock())
    assert all(breaker.allow() for _ in range(5))
    breaker.succeeded()
    assert breaker.allow() and breaker.skipped == 0


def test_after_a_failure_calls_fail_at_once_then_one_tries_each_pause() -> None:
    clock = Clock()
    breaker = Breaker(1.0, clock)
    breaker.failed()
    assert [breaker.allow() for _ in range(3)] == [False, False, False]
    clock.now += 1.0
    assert [breaker.allow() for _ in range(3)] == [True, False, False]  # one trial
    breaker.failed()  # it failed: another pause
    clock.now += 0.5
    assert not breaker.allow()
    clock.now += 0.5
    assert breaker.allow()
    breaker.succeeded()  # Redis is back
    assert [breaker.allow() for _ in range(3)] == [True, True, True]
    assert breaker.skipped == 6


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    made = aioredis.Redis.from_url(redis_server.url, socket_timeout=5)
    yield made
    await made.aclose()


async def scripts_run(redis_server: RedisServer) -> int:
    """EVAL and EVALSHA calls Redis has run (INFO commandstats), through a client of its own."""
    probe = aioredis.Redis.from_url(redis_server.url)
    try:
        stats = await probe.info("commandstats")
    finally:
        await probe.aclose()
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))
        for name in ("eval", "evalsha")
    )


async def test_a_stalled_redis_is_asked_once_a_pause(
    client: aioredis.Redis, redis_server: RedisServer
) -> None:
    clock = Clock()
    breaker = Breaker(1.0, clock)
    state = SharedState(client, TIMEOUT_S, breaker=breaker)
    connections = SharedConnections(client, TIMEOUT_S, breaker=breaker)
    assert await state.take("login", "ada", 100, 60.0) == 0.0  # the script is loaded
    assert (
        await connections.admit("ada", "192.0.2.1", 10, 10) is not None
    )  # and this one
    before = await scripts_run(redis_server)
    assert redis_server.process is not None
    redis_server.process.send_signal(signal.SIGSTOP)
    try:
        for _ in range(10):
            with pytest.raises(SharedUnavailable):
                await state.take("login", "ada", 100, 60.0)
        for _ in range(10):  # admitted on the node's own count, at once
            assert await connections.admit("ada", "192.0.2.1", 10, 10) is not None
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    assert breaker.skipped == 19
    assert connections.degraded == 10
    # Only the first call was sent to the stopped Redis (it runs it on waking, unless the
    # client's timeout closed that socket first); the other 19 failed without a word to it.
    assert await scripts_run(redis_server) - before <= 1
    clock.now += 1.0
    assert (
        await state.take("login", "ada", 100, 60.0) == 0.0
    )  # the trial: Redis is back
    assert await state.take("login", "ada", 100, 60.0) == 0.0
    assert breaker.skipped == 19
