"""Stopping an account across nodes: real `rawws serve` processes on one PostgreSQL and one Redis,
and `rawws admin` run as an operator runs it, on the side.

What they measure (and print; the figures are the issue's, read by the closing note, never
asserted: a shared machine's wall clock is no verdict): every connection of a disabled user
closed with 1008 on every node, from the stamp the command wrote (taken before its
transaction, so the figure over-counts a little), with the bus up (the command publishes
it) and with Redis stopped (the nodes' store poll alone). The tests hold what happens: every
close, its code and reason, and nobody else's.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from tests.support.chat_client import (
    PASSWORD,
    ChatClient,
    close_quietly,
    connect_chat,
    new_user,
)
from tests.support.chat_client import login as chat_login
from tests.support.helpers import TIMEOUT_S, http, raw_upgrade_status
from tests.support.nodes import Node, node_starter, serve_environment
from tests.support.redis_server import RedisServer

SECRET = "account-stops-test-secret-" + "z" * 32
StartNode = Callable[..., Awaitable[Node]]


@pytest.fixture
def env(postgres_url: str, redis_server: RedisServer) -> dict[str, str]:
    """What every node (and `rawws admin`) is given, as an operator's env file would."""
    return {
        "RAWWS_DB_URL": postgres_url,
        "RAWWS_BUS_URL": redis_server.url,
        "RAWWS_JWT_SECRET": SECRET,
        "RAWWS_REGISTRATIONS_PER_HOUR_PER_ADDRESS": "100000",
        "RAWWS_WEBSOCKETS_PER_ADDRESS": "100000",
    }


@pytest.fixture
async def nodes(tmp_path: Path, env: dict[str, str]) -> AsyncIterator[StartNode]:
    async with node_starter(tmp_path, env) as start:
        yield start


async def stamp_of(postgres_url: str, user_key: str) -> float:
    """The ``not_before`` the command wrote (epoch seconds), read back from PostgreSQL."""
    dsn = postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    try:
        value = await connection.fetchval(
            "SELECT not_before FROM users WHERE username_key = $1", user_key
        )
    finally:
        await connection.close()
    return float(value)


async def closed_at(client: ChatClient) -> tuple[int | None, str, float]:
    """The close code and reason the server sent, and when (epoch seconds) the client saw it."""
    await asyncio.wait_for(client.ws.wait_closed(), TIMEOUT_S)
    return client.ws.close_code, client.ws.close_reason or "", time.time()


async def admin(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """`rawws admin ARGS` as an operator runs it, with the nodes' RAWWS_* environment."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rawws", "admin", *args,
        env=serve_environment(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), TIMEOUT_S * 3)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def disable_and_measure(
    three: list[Node],
    env: dict[str, str],
    before: Callable[[], Awaitable[None]],
) -> tuple[float, str]:
    """Ada on every node twice, Bob once; ``before``, then `rawws admin disable ada`
    with the nodes' environment (database, bus, secret), as an operator runs it.

    Every connection of Ada's is closed 1008 on every node; Bob's stay. The seconds from
    the stamp to the last 1008, and what the command printed.
    """
    postgres_url = env["RAWWS_DB_URL"]
    await new_user(three[0].port, "ada")
    await new_user(three[0].port, "bob")
    adas: list[ChatClient] = []
    bobs: list[ChatClient] = []
    for node in three:
        for _ in range(2):
            adas.append(
                await connect_chat(node.port, await chat_login(node.port, "ada"), "ada")
            )
        bobs.append(
            await connect_chat(node.port, await chat_login(node.port, "bob"), "bob")
        )
    try:
        await before()
        # watched from before the command starts: its exit (the process winding down)
        # is not what is measured
        watching = asyncio.gather(*(closed_at(client) for client in adas))
        code, out, err = await admin("disable", "ada", env=env)
        assert code == 0, err
        assert "ada disabled" in out
        closes = await watching
        assert {(code, reason) for code, reason, _ in closes} == {
            (1008, "account disabled")
        }
        elapsed = max(at for _, _, at in closes) - await stamp_of(postgres_url, "ada")
        assert all(not bob.done for bob in bobs)  # nobody else was touched
        for node in three:
            refused = await http(
                node.port,
                "POST",
                "/auth/login",
                {"username": "ada", "password": PASSWORD},
            )
            assert refused.status == 403
            assert refused.json["error"]["code"] == "account_disabled"
        return elapsed, out
    finally:
        await close_quietly(*adas, *bobs)


async def test_disable_closes_every_connection_on_three_nodes_within_a_second(
    nodes: StartNode, env: dict[str, str]
) -> None:
    three = [await nodes() for _ in range(3)]

    async def nothing() -> None:
        return None

    elapsed, out = await disable_and_measure(three, env, nothing)
    print(f"disable -> last 1008 across 3 nodes (bus up): {elapsed * 1000:.0f} ms")
    assert "not told over the bus" not in out


async def test_disable_reaches_every_node_with_redis_stopped(
    nodes: StartNode, env: dict[str, str], redis_server: RedisServer
) -> None:
    three = [await nodes() for _ in range(3)]

    async def stop_redis() -> None:
        redis_server.stop()

    elapsed, out = await disable_and_measure(three, env, stop_redis)
    print(
        f"disable -> last 1008 across 3 nodes (Redis stopped): {elapsed * 1000:.0f} ms"
    )
    assert "not told over the bus" in out  # the store poll carried it


async def test_a_logout_on_one_node_stops_the_token_on_another(
    nodes: StartNode,
) -> None:
    a, b = await nodes(), await nodes()
    await new_user(a.port, "ada")
    reply = await http(
        a.port,
        "POST",
        "/auth/login",
        {"username": "ada", "password": PASSWORD},
    )
    tokens = reply.json
    on_b = await connect_chat(b.port, tokens["access_token"], "ada")
    try:
        out = await http(
            a.port, "POST", "/auth/logout", {"refresh_token": tokens["refresh_token"]}
        )
        assert out.status == 200 and out.json == {"revoked": True}
        logged_out = time.time()
        code, reason, at = await closed_at(on_b)
        assert (code, reason) == (1008, "signed out")
        print(
            f"logout on one node -> 1008 on another (bus): {(at - logged_out) * 1000:.0f} ms"
        )
        status, _ = await raw_upgrade_status(
            b.port, f"/ws?token={tokens['access_token']}"
        )
        assert status == 401
    finally:
        await close_quietly(on_b)
