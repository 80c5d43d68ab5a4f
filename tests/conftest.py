"""Shared fixtures: a real rawws server on a free loopback port, per test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from rawws.cli import setup_endpoints
from rawws.config import ServerConfig
from rawws.server import Server

StartServer = Callable[..., Awaitable[Server]]


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """Start ``Server``s on 127.0.0.1:0 with ``/echo``; every one is shut down after the test."""
    servers: list[Server] = []

    async def start(**settings: object) -> Server:
        config = ServerConfig(**{"host": "127.0.0.1", "port": 0, "echo": True, **settings})  # type: ignore[arg-type]
        server = Server(config)
        setup_endpoints(server)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await asyncio.wait_for(server.shutdown(), timeout=15)


@pytest.fixture
async def echo_server(start_server: StartServer) -> Server:
    return await start_server()
