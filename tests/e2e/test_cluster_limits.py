"""Per-user and per-address limits hold across nodes: two real `rawws serve` processes, one Redis, one store.

A client alternates between the nodes; the totals must stop at the configured
limit, not at twice it. Every client here is 127.0.0.1, behind which the nodes
believe ``X-Forwarded-For`` (a trusted proxy), so each test picks its own
client addresses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.helpers import (
    PASSWORD,
    TIMEOUT_S,
    close_writer,
    http,
    open_raw,
    read_http_head,
    upgrade_request,
)
from tests.support.nodes import Node, start_node
from tests.support.redis_server import RedisServer

REGISTRATIONS = 4
TICKETS = 5
WEBSOCKETS_PER_USER = 3
WEBSOCKETS_PER_ADDRESS = 4
LOGINS_PER_USER = 3

Socket = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture
async def two_nodes(
    tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[tuple[Node, Node]]:
    """Two nodes on one SQLite file (one data dir: one database, one token secret) and one Redis."""
    shared = tmp_path / "shared"
    env = {
        "RAWWS_BUS_URL": redis_server.url,
        "RAWWS_FORWARDED_ALLOW_IPS": "127.0.0.1",
        "RAWWS_REGISTRATIONS_PER_HOUR_PER_ADDRESS": str(REGISTRATIONS),
        "RAWWS_TICKETS_PER_MINUTE_PER_USER": str(TICKETS),
        "RAWWS_WEBSOCKETS_PER_USER": str(WEBSOCKETS_PER_USER),
        "RAWWS_WEBSOCKETS_PER_ADDRESS": str(WEBSOCKETS_PER_ADDRESS),
        "RAWWS_LOGINS_PER_MINUTE_PER_USER": str(LOGINS_PER_USER),
        "RAWWS_ECHO": "1",
    }
    started: list[Node] = []
    try:
        for name in (
            "a",
            "b",
        ):  # one after the other: the second finds the first's secret
            started.append(
                await start_node(
                    tmp_path / name, "--data-dir", str(shared), port=0, env=env
                )
            )
        yield started[0], started[1]
    finally:
        for node in started:
            await node.stop()


def client(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def register(node: Node, username: str, address: str) -> int:
    reply = await http(
        node.port,
        "POST",
        "/auth/register",
        {"username": username, "password": PASSWORD},
        headers=client(address),
    )
    return reply.status


async def login(node: Node, username: str, password: str, address: str) -> int:
    reply = await http(
        node.port,
        "POST",
        "/auth/login",
        {"username": username, "password": password},
        headers=client(address),
    )
    return reply.status


async def access_token(node: Node, username: str, address: str) -> str:
    reply = await http(
        node.port,
        "POST",
        "/auth/login",
        {"username": username, "password": PASSWORD},
        headers=client(address),
    )
    assert reply.status == 200, reply.body
    return str(reply.json["access_token"])


async def upgrade(
    node: Node, path: str, address: str, token: str | None = None
) -> tuple[int, Socket]:
    reader, writer = await open_raw(node.port)
    extra = f"X-Forwarded-For: {address}\r\n"
    if token is not None:
        extra += f"Authorization: Bearer {token}\r\n"
    writer.write(upgrade_request(path, host=f"127.0.0.1:{node.port}", extra=extra))
    status, _, _ = await read_http_head(reader, TIMEOUT_S)
    return status, (reader, writer)


async def test_registrations_per_address_are_counted_across_nodes(
    two_nodes: tuple[Node, Node],
) -> None:
    nodes = two_nodes
    statuses = [
        await register(nodes[n % 2], f"reg{n}", "198.51.100.20") for n in range(8)
    ]
    assert statuses == [201] * REGISTRATIONS + [429] * (8 - REGISTRATIONS)
    # Another address has its own budget.
    assert await register(nodes[1], "other", "198.51.100.21") == 201


async def test_tickets_per_user_are_counted_across_nodes(
    two_nodes: tuple[Node, Node],
) -> None:
    nodes = two_nodes
    assert await register(nodes[0], "tia", "198.51.100.30") == 201
    token = await access_token(nodes[0], "tia", "198.51.100.30")
    statuses = []
    for n in range(TICKETS + 3):
        reply = await http(
            nodes[n % 2].port,
            "POST",
            "/auth/ticket",
            headers={"Authorization": f"Bearer {token}"},
        )
        statuses.append(reply.status)
    assert statuses == [200] * TICKETS + [429] * 3


async def test_websockets_per_user_and_per_address_are_counted_across_nodes(
    two_nodes: tuple[Node, Node],
) -> None:
    nodes = two_nodes
    assert await register(nodes[0], "wes", "198.51.100.40") == 201
    token = await access_token(nodes[0], "wes", "198.51.100.40")
    held: list[Socket] = []
    try:
        statuses = []
        for n in range(WEBSOCKETS_PER_USER + 2):  # each from an address of its own
            status, sock = await upgrade(nodes[n % 2], "/ws", f"203.0.113.{n}", token)
            statuses.append(status)
            (held if status == 101 else [sock]).append(sock)
            if status != 101:
                await close_writer(sock[1])
        assert statuses == [101] * WEBSOCKETS_PER_USER + [429] * 2
        # A connection ends on node a: its slot is free on node b.
        await close_writer(held.pop(0)[1])
        for _ in range(200):
            status, sock = await upgrade(nodes[1], "/ws", "203.0.113.99", token)
            if status == 101:
                held.append(sock)
                break
            await close_writer(sock[1])
            await asyncio.sleep(0.05)
        assert status == 101

        # One address, no user (/echo): its own limit, across the nodes too.
        statuses = []
        for n in range(WEBSOCKETS_PER_ADDRESS + 2):
            status, sock = await upgrade(nodes[n % 2], "/echo", "192.0.2.50")
            statuses.append(status)
            held.append(sock)
        assert statuses == [101] * WEBSOCKETS_PER_ADDRESS + [429] * 2
    finally:
        for _, writer in held:
            await close_writer(writer)


async def test_a_guesser_on_one_node_does_not_lock_the_owner_out_on_another(
    two_nodes: tuple[Node, Node],
) -> None:
    a, b = two_nodes
    assert await register(a, "vic", "198.51.100.60") == 201
    guesses = [
        await login((a, b)[n % 2], "vic", "wrong-Passw0rd", "192.0.2.66")
        for n in range(LOGINS_PER_USER + 3)
    ]
    assert (
        guesses == [401] * LOGINS_PER_USER + [429] * 3
    )  # the guesser: limited everywhere
    assert await login(b, "vic", PASSWORD, "198.51.100.61") == 200
    assert await login(a, "vic", PASSWORD, "198.51.100.62") == 200
    assert await login(b, "vic", "wrong-Passw0rd", "192.0.2.66") == 429


async def test_a_killed_nodes_connections_stop_counting_when_its_lease_ends(
    two_nodes: tuple[Node, Node],
) -> None:
    a, b = two_nodes
    assert await register(a, "kim", "198.51.100.70") == 201
    token = await access_token(a, "kim", "198.51.100.70")
    held: list[Socket] = []
    try:
        for n in range(WEBSOCKETS_PER_USER):
            status, sock = await upgrade(a, "/ws", f"203.0.113.{100 + n}", token)
            assert status == 101
            held.append(sock)
        status, sock = await upgrade(b, "/ws", "203.0.113.120", token)
        await close_writer(sock[1])
        assert status == 429
        a.kill()  # no goodbye: its connections are never counted out
        await a.process.wait()
        # Within the lease (15 s) and the polling, node b admits kim again: bounded, not timed.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while True:
            status, sock = await upgrade(b, "/ws", "203.0.113.121", token)
            if status == 101:
                held.append(sock)
                break
            await close_writer(sock[1])
            assert loop.time() < deadline, "a killed node's connections still count"
            await asyncio.sleep(0.5)
    finally:
        for _, writer in held:
            await close_writer(writer)
