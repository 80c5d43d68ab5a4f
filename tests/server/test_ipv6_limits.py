"""Behind a trusted proxy, every per-address limit keys an IPv6 client by its /64, however the proxy spells it."""

from __future__ import annotations

import asyncio

from tests.conftest import StartServer
from tests.support.helpers import (
    PASSWORD,
    close_writer,
    http,
    open_raw,
    read_http_head,
    upgrade_request,
)

# One /64, written four ways a proxy might; then a neighbouring /64.
SAME_64 = ["2001:db8::1", "2001:db8::2", "2001:DB8:0:0:ffff::3", "2001:db8::abcd:4"]
NEXT_64 = "2001:db8:0:1::1"


async def register_from(port: int, username: str, forwarded_for: str) -> int:
    reply = await http(
        port,
        "POST",
        "/auth/register",
        {"username": username, "password": PASSWORD},
        headers={"X-Forwarded-For": forwarded_for},
    )
    return reply.status


async def login_from(port: int, username: str, forwarded_for: str) -> int:
    reply = await http(
        port,
        "POST",
        "/auth/login",
        {"username": username, "password": "wrong-Passw0rd"},
        headers={"X-Forwarded-For": forwarded_for},
    )
    return reply.status


async def test_registrations_from_one_64_share_one_budget(
    start_server: StartServer,
) -> None:
    server = await start_server(
        registrations_per_hour_per_address=3, forwarded_allow_ips=("127.0.0.1",)
    )
    statuses = [
        await register_from(server.port, f"six{n}", address)
        for n, address in enumerate(SAME_64)
    ]
    assert statuses == [201, 201, 201, 429]
    assert await register_from(server.port, "next", NEXT_64) == 201
    # IPv4 behind the same proxy: one address, one key (an IPv4-mapped spelling included).
    four = [
        await register_from(server.port, f"four{n}", address)
        for n, address in enumerate(
            ["198.51.100.1", "::ffff:198.51.100.1", "198.51.100.1", "198.51.100.1"]
        )
    ]
    assert four == [201, 201, 201, 429]
    assert await register_from(server.port, "four9", "198.51.100.2") == 201


async def test_logins_from_one_64_share_one_budget(start_server: StartServer) -> None:
    server = await start_server(
        logins_per_minute_per_address=3, forwarded_allow_ips=("127.0.0.1",)
    )
    statuses = [
        await login_from(server.port, f"name{n}", address)
        for n, address in enumerate(SAME_64)
    ]
    assert statuses == [401, 401, 401, 429]
    assert await login_from(server.port, "name9", NEXT_64) == 401


async def test_websockets_from_one_64_share_one_budget(
    start_server: StartServer,
) -> None:
    server = await start_server(
        websockets_per_address=3, forwarded_allow_ips=("127.0.0.1",)
    )
    held: list[asyncio.StreamWriter] = []
    try:
        statuses = []
        for address in [*SAME_64, NEXT_64]:
            reader, writer = await open_raw(server.port)
            held.append(writer)
            writer.write(
                upgrade_request("/echo", extra=f"X-Forwarded-For: {address}\r\n")
            )
            statuses.append((await read_http_head(reader))[0])
        assert statuses == [101, 101, 101, 429, 101]
    finally:
        for writer in held:
            await close_writer(writer)
