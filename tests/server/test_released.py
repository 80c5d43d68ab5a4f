"""A closed WebSocket is freed by reference counting, not left in a cycle for the garbage collector.

A server that closes many connections at once (a deploy, a network blip)
would otherwise leave each one's objects (the connection, its core, its inbox,
its task: some thirty) for the collector's full pass, which then stalls the
loop for as long as it takes to walk them all: 10,000 closed connections made
the next handshakes ~5x slower until it ran. So these tests keep the collector
off while a connection lives and ends, and ask that the connection be gone
before it is switched back on: a weak reference that is still alive then
names the cycle (or the leak) that holds it.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import struct
import weakref

import pytest

import rawws
from rawws.server.connection import ServerConnection
from rawws.server.http11 import HttpConnection
from tests.support.helpers import (
    TIMEOUT_S,
    open_raw,
    read_http_head,
    upgrade_request,
    wait_for_condition,
)


async def settle() -> None:
    """A few loop turns: done-callbacks and scheduled flushes that still hold the connection run."""
    for _ in range(5):
        await asyncio.sleep(0)


def assert_freed(ref: weakref.ref[ServerConnection]) -> None:
    """The connection is gone; if not, say what holds it: a cycle (the collector frees it) or an outside reference."""
    if ref() is None:
        return
    gc.collect()
    if ref() is None:
        pytest.fail(
            "the closed connection is in a reference cycle: only the collector frees it"
        )
    pytest.fail("the closed connection is still referenced from outside")


async def test_a_coroutine_handlers_connection_is_freed_once_it_ends(
    serve, no_collector: None
) -> None:
    refs: list[weakref.ref[ServerConnection]] = []
    tasks: list[asyncio.Task[None]] = []

    async def echo(connection: ServerConnection) -> None:
        refs.append(weakref.ref(connection))
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)
        async for message in connection:
            await connection.send(message)

    server = await serve(echo)
    async with rawws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
    # The handler's task ends once the close is done and TCP is gone.
    await asyncio.wait_for(asyncio.shield(tasks[0]), TIMEOUT_S)
    await settle()
    assert not server.connections
    (ref,) = refs
    assert_freed(ref)


async def test_a_callback_handlers_connection_is_freed_once_it_ends(
    serve, no_collector: None
) -> None:
    refs: list[weakref.ref[ServerConnection]] = []

    class Echo:
        def on_open(self, connection: ServerConnection) -> None:
            refs.append(weakref.ref(connection))

        def on_message(self, connection: ServerConnection, data: str | bytes) -> None:
            connection.send_nowait(data)

        def on_close(self, connection: ServerConnection, code: int) -> None:
            pass

    server = await serve(Echo())
    async with rawws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
    await wait_for_condition(lambda: not server.connections, what="the connection ends")
    await settle()
    (ref,) = refs
    assert_freed(ref)


def alive(kind: type) -> int:
    """How many objects of ``kind`` exist (the collector is off: one left in a cycle stays counted)."""
    return sum(1 for obj in gc.get_objects() if type(obj) is kind)


async def reset(writer: asyncio.StreamWriter) -> None:
    """Drop the connection with a TCP reset, as a peer that vanishes does (no close frame, no FIN)."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def test_a_connection_whose_peer_vanished_is_freed_with_its_handlers_error(
    serve, no_collector: None
) -> None:
    """The handler's ``async for`` raises 1006; that error's traceback must not keep the connection."""
    ended: list[bool] = []

    async def echo(connection: ServerConnection) -> None:
        try:
            async for message in connection:
                await connection.send(message)
        finally:
            ended.append(True)

    server = await serve(echo)
    reader, writer = await open_raw(server.port)
    writer.write(upgrade_request("/"))
    status, _, _ = await read_http_head(reader)
    assert status == 101
    await reset(writer)
    await wait_for_condition(lambda: ended and not server.connections, what="the end")
    await settle()
    await wait_for_condition(
        lambda: alive(ServerConnection) == 0, what="the connection freed"
    )


async def test_a_keep_alive_http_connection_reset_by_its_peer_is_freed(
    serve, no_collector: None
) -> None:
    """Reset while waiting for its next request: the stream reader keeps the error, which must not keep it."""

    async def echo(connection: ServerConnection) -> None:
        async for message in connection:
            await connection.send(message)

    server = await serve(echo)
    before = alive(HttpConnection)
    reader, writer = await open_raw(server.port)
    writer.write(b"GET /not-a-websocket HTTP/1.1\r\nHost: test\r\n\r\n")
    status, _, _ = await read_http_head(reader)
    assert 400 <= status < 500
    assert alive(HttpConnection) == before + 1  # kept alive for the next request
    await reset(writer)
    await wait_for_condition(
        lambda: alive(HttpConnection) == before, what="the HTTP connection freed"
    )
