"""Shared fixtures: a real rawws server on a free loopback port, per test; the database to run it on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from rawws.apps.setup import setup_service
from rawws.config import ServerConfig
from rawws.server.server import Server

# the collector and PostgreSQL fixtures, found by pytest under these names here (the aliases mark them re-exported)
from tests.support.collector import no_collector as no_collector
from tests.support.postgres import postgres_cluster as postgres_cluster
from tests.support.postgres import postgres_url as postgres_url
from tests.support.redis_sentinel import redis_sentinels as redis_sentinels
from tests.support.redis_server import redis_server as redis_server

StartServer = Callable[..., Awaitable[Server]]


# argon2id still, but cheap: tests register and log in often.
CHEAP_ARGON2 = {
    "argon2_time_cost": 1,
    "argon2_memory_kib": 8 * 1024,
    "argon2_parallelism": 1,
}
# Every test client comes from 127.0.0.1: the per-address limits are tested on their own, with small values.
ONE_ADDRESS = {
    "registrations_per_hour_per_address": 100_000,
    "websockets_per_address": 100_000,
}


@pytest.fixture
async def start_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[StartServer]:
    """Start full ``Server``s on 127.0.0.1:0 (with ``/echo``, a fresh SQLite data dir unless told
    otherwise); every one is shut down after the test."""
    servers: list[Server] = []

    async def start(**settings: object) -> Server:
        defaults = {
            "host": "127.0.0.1",
            "port": 0,
            "echo": True,
            "data_dir": str(tmp_path_factory.mktemp("rawws-data")),
            **CHEAP_ARGON2,
            **ONE_ADDRESS,
        }
        config = ServerConfig(**{**defaults, **settings})  # type: ignore[arg-type]
        server = Server(config)
        await setup_service(server)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await asyncio.wait_for(server.shutdown(), timeout=15)


@pytest.fixture
async def echo_server(start_server: StartServer) -> Server:
    return await start_server()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str | None:
    """``None`` (SQLite in the server's data dir) or a fresh PostgreSQL database: a test taking it runs on both."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_url")
