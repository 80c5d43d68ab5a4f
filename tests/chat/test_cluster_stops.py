"""A stamp set on one node reaches the others over the bus at once: two real servers on one
PostgreSQL and one real ``redis-server``, with their store poll slowed to an hour so only the
bus can carry it."""

from __future__ import annotations

import asyncio
import time

import pytest

from rawws.accounts.stops import StopBook
from rawws.accounts.upgrade_auth import (
    WebSocketAuthenticator,
)
from rawws.cli.admin import admin_command
from rawws.server.server import Server
from tests.conftest import StartServer
from tests.support.chat_client import PASSWORD, close_quietly, connect_chat, new_user
from tests.support.helpers import TIMEOUT_S, http, raw_upgrade_status
from tests.support.redis_server import RedisServer

SECRET = "cluster-stops-test-secret-" + "x" * 32


def stop_book(server: Server) -> StopBook:
    authenticate = server.endpoints["/ws"].authenticate
    assert isinstance(authenticate, WebSocketAuthenticator)
    check = authenticate.check_stopped
    book = getattr(check, "__self__", None)
    assert isinstance(book, StopBook)
    return book


async def test_a_logout_reaches_another_node_over_the_bus_without_its_poll(
    start_server: StartServer, postgres_url: str, redis_server: RedisServer
) -> None:
    settings = {
        "db_url": postgres_url,
        "bus_url": redis_server.url,
        "jwt_secret": SECRET,
    }
    a, b = await start_server(**settings), await start_server(**settings)
    for server in (a, b):
        stop_book(server).poll_s = 3600.0
    await asyncio.sleep(0.6)  # each poll loop's current half-second sleep is over

    await new_user(a.port, "ada")
    reply = await http(
        a.port, "POST", "/auth/login", {"username": "ada", "password": PASSWORD}
    )
    tokens = reply.json
    on_b = await connect_chat(b, tokens["access_token"], "ada")
    try:
        out = await http(
            a.port, "POST", "/auth/logout", {"refresh_token": tokens["refresh_token"]}
        )
        assert out.json == {"revoked": True}
        logged_out = time.monotonic()
        await asyncio.wait_for(on_b.ws.wait_closed(), TIMEOUT_S)
        took = time.monotonic() - logged_out
        assert (on_b.ws.close_code, on_b.ws.close_reason) == (1008, "signed out")
        assert took < 0.5, took
        status, _ = await raw_upgrade_status(
            b.port, f"/ws?token={tokens['access_token']}"
        )
        assert status == 401
    finally:
        await close_quietly(on_b)


async def test_rawws_admin_disable_reaches_the_nodes_over_the_bus_without_their_poll(
    start_server: StartServer,
    postgres_url: str,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = {
        "db_url": postgres_url,
        "bus_url": redis_server.url,
        "jwt_secret": SECRET,
    }
    a, b = await start_server(**settings), await start_server(**settings)
    for server in (a, b):
        stop_book(server).poll_s = 3600.0
    await asyncio.sleep(0.6)
    token = await new_user(a.port, "ada")
    clients = [await connect_chat(server, token, "ada") for server in (a, b)]
    monkeypatch.setenv("RAWWS_JWT_SECRET", SECRET)
    try:
        started = time.monotonic()
        code = await asyncio.to_thread(
            admin_command,
            [
                "admin",
                "disable",
                "ada",
                "--db",
                postgres_url,
                "--bus",
                redis_server.url,
            ],
        )
        assert code == 0
        for client in clients:
            await asyncio.wait_for(client.ws.wait_closed(), TIMEOUT_S)
            assert client.ws.close_code == 1008
        took = time.monotonic() - started
        assert took < 0.5, took
    finally:
        await close_quietly(*clients)
