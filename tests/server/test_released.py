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
import weakref
from collections.abc import Iterator

import pytest

import rawws
from rawws.server.connection import ServerConnection
from tests.support.helpers import TIMEOUT_S, wait_for_condition


@pytest.fixture
def no_collector() -> Iterator[None]:
    """The cyclic collector off for the test (only reference counting frees objects), then back as it was."""
    gc.collect()  # what earlier tests left does not run into this one
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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
