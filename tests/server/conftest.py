"""Fixtures of the library's server tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

import rawws
from rawws.server.server import Server
from tests.support.helpers import TIMEOUT_S


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    """``rawws.serve(handler, "127.0.0.1", 0, **options)``, started; every server is closed after the test."""
    servers: list[Server] = []

    async def start(handler: object, **options: object) -> Server:
        server = await rawws.serve(handler, "127.0.0.1", 0, **options)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        await asyncio.wait_for(server.shutdown(), TIMEOUT_S)
