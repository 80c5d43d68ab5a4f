"""`rawws serve` as a process: SIGINT and SIGTERM are heard from before the first step of start-up to the end.

Without this, a Ctrl-C while the database connects is a ``KeyboardInterrupt``
raised wherever the code happens to be (a hundred lines of traceback), and a
SIGTERM kills the process with the connections half made. Here both stop
signals are handled by the event loop from the start. While starting, the
first one cancels the start: what the set-up had opened is closed (the
schema's transaction rolls back with its connection) and ``StartInterrupted``
says which signal it was. Once listening, the first one begins the graceful
shutdown (``/readyz`` drains, 1001 to every WebSocket, the store flushed).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from rawws.config import ServerConfig
from rawws.errors import StartInterrupted
from rawws.server.readiness import STOP_SIGNALS, drain, stop_signals
from rawws.server.server import Server

log = logging.getLogger("rawws.server")

T = TypeVar("T")
#: A cancelled start is given this long to close what it opened; a driver that does not let go by then is left
#: behind (the process is ending: the kernel closes its sockets).
UNWIND_S = 2.0


async def unless_stopped(
    awaitable: Awaitable[T], stopped: asyncio.Future[signal.Signals]
) -> T:
    """What ``awaitable`` gives, or ``StartInterrupted`` when a stop signal comes first (it is then cancelled)."""
    task = asyncio.ensure_future(awaitable)
    either: set[asyncio.Future[Any]] = {task, stopped}
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.wait({task}, timeout=UNWIND_S)
    task.add_done_callback(_forget)
    raise StartInterrupted(stopped.result().name)


def _forget(task: asyncio.Future[Any]) -> None:
    """How a cancelled start ended is no one's to log: the interruption is the one line."""
    if not task.cancelled():
        task.exception()


async def start(
    server: Server, setup: Callable[[Server], Awaitable[object]] | None
) -> None:
    """Listen, set the server up, accept: the port first, so a host or port that cannot be had is said before
    any file or database is touched. When a step fails or is cancelled, what the set-up opened is closed."""
    try:
        await server.listen()
        if setup is not None:
            await setup(server)
        await server.start()
    except BaseException:
        server.stop_listening()
        await server.run_shutdown_hooks(quietly=True)
        raise


async def run_server(
    config: ServerConfig,
    setup: Callable[[Server], Awaitable[object]] | None = None,
    on_listening: Callable[[], None] | None = None,
) -> None:
    """Start a server, announce where it listens, and serve until a stop signal (then shut down gracefully).

    A stop signal before it listens raises ``StartInterrupted``; ``on_listening`` runs once it listens.
    """
    server = Server(config)
    with stop_signals() as stopped:
        await unless_stopped(start(server, setup), stopped)
        # Everything built so far (modules, routes, the store's engine) lives as long as the process:
        # frozen, the collector's full passes skip it and scan only what connections create.
        gc.freeze()
        scheme = "https" if config.tls else "http"
        log.info("listening on %s://%s:%d", scheme, config.host, server.port)
        if on_listening is not None:
            on_listening()
        await stopped
        await drain(server.readiness, config.drain_delay_s, STOP_SIGNALS)
    await server.shutdown()
