"""Limits an attacker cannot multiply: open WebSockets per user and per address, refused with 429 before the 101."""

from __future__ import annotations

import asyncio

from rawws.server.limits import ConnectionLimits
from tests.conftest import StartServer
from tests.support.helpers import (
    TIMEOUT_S,
    access_token,
    close_writer,
    open_raw,
    read_http_head,
    register,
    upgrade_request,
    wait_for_condition,
)

Socket = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def upgrade(
    port: int, path: str, token: str | None = None
) -> tuple[int, dict[str, str], Socket]:
    reader, writer = await open_raw(port)
    extra = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write(upgrade_request(path, host=f"127.0.0.1:{port}", extra=extra))
    status, headers, _ = await read_http_head(reader, TIMEOUT_S)
    return status, headers, (reader, writer)


async def test_websockets_per_user_are_limited_and_slots_come_back(
    start_server: StartServer,
) -> None:
    server = await start_server(websockets_per_user=2)
    for name in ("ada", "bob"):
        assert (await register(server.port, name)).status == 201
    ada, bob = (
        await access_token(server.port, "ada"),
        await access_token(server.port, "bob"),
    )
    opened = [await upgrade(server.port, "/ws", ada) for _ in range(2)]
    assert [status for status, _, _ in opened] == [101, 101]
    status, headers, refused = await upgrade(server.port, "/ws", ada)
    assert status == 429
    assert headers["retry-after"].isdigit() and int(headers["retry-after"]) >= 1
    await close_writer(refused[1])
    assert (await upgrade(server.port, "/ws", bob))[
        0
    ] == 101  # another user is not affected
    # One of Ada's connections ends: its slot is hers again.
    await close_writer(opened[0][2][1])
    await wait_for_condition(
        lambda: server.limits.open_for("ada") == 1, what="the closed session released"
    )
    assert (await upgrade(server.port, "/ws", ada))[0] == 101
    assert server.limits.open_for("ada") == 2


async def test_websockets_per_address_are_limited_across_users_and_endpoints(
    start_server: StartServer,
) -> None:
    server = await start_server(websockets_per_address=3)
    held = [await upgrade(server.port, "/echo") for _ in range(3)]
    assert [status for status, _, _ in held] == [101, 101, 101]
    status, headers, _ = await upgrade(server.port, "/echo")
    assert status == 429 and "retry-after" in headers
    assert (
        await register(server.port, "ada")
    ).status == 201  # plain HTTP is not a WebSocket slot
    assert (await upgrade(server.port, "/ws", await access_token(server.port, "ada")))[
        0
    ] == 429


def test_connection_limits_release_once() -> None:
    limits = ConnectionLimits(per_user=1, per_address=5)
    release = limits.admit("ada", "10.0.0.1:4000")
    release()
    release()  # a second release must not hand out a second slot
    limits.admit("ada", "10.0.0.1:4001")
    try:
        limits.admit("ada", "10.0.0.2:4002")
    except Exception as refused:
        assert getattr(refused, "status", None) == 429
    else:
        raise AssertionError("the second connection of ada was admitted")


def test_a_release_is_a_small_object_not_a_closure() -> None:
    """Kept with every open connection: three slots, no function and cells (``ConnectionLimits.admit``)."""
    limits = ConnectionLimits(per_user=2, per_address=5)
    release = limits.admit("ada", "10.0.0.1:4000")
    assert not hasattr(release, "__dict__") and not hasattr(release, "__closure__")
    assert limits.open_for("ada") == 1
    release()
    assert limits.open_for("ada") == 0
