"""``/readyz``: may a load balancer send this node new clients? ``/healthz`` only says the process answers.

Ready means every dependency registered here (the store; the bus when one is
configured) answered its check within ``timeout_s``, and the node is not
draining. A check runs as its own task and is never cancelled on timeout
(cancelling a database driver mid-connect can leave it hanging): a probe that
finds the previous check still running reports the dependency as not
answering, so slow probes never pile up.

Draining is the first step of a graceful stop: ``/readyz`` answers 503 while
the node still serves, so the proxy stops sending new clients before the
WebSockets are told 1001. The stop itself is a signal (``stop_signals``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable, Iterator

from rawws.core.http import Request, Response, json_response

log = logging.getLogger("rawws.server")

Check = Callable[[], Awaitable[object]]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class NotReady(Exception):
    """A check's answer that the node is not ready, in words of its own, shown as they are in ``/readyz``.

    Any other exception is shown by its class only (a driver's message may name
    hosts or users); a check raises this to say more, and never with a driver's words.
    """


class Readiness:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.draining = False
        self._checks: dict[str, Check] = {}
        self._running: dict[str, asyncio.Future[object]] = {}

    def add(self, name: str, check: Check) -> None:
        """Require ``check()`` to return (anything) in time for the node to be ready."""
        self._checks[name] = check

    async def problems(self) -> dict[str, str]:
        """Dependency → why it is not ready; empty when all answered."""
        futures: dict[str, asyncio.Future[object]] = {}
        for name, check in self._checks.items():
            running = self._running.get(name)
            if running is None or running.done():
                running = self._running[name] = asyncio.ensure_future(check())
            futures[name] = running
        if futures:
            await asyncio.wait(futures.values(), timeout=self.timeout_s)
        problems: dict[str, str] = {}
        for name, future in futures.items():
            if not future.done():
                problems[name] = f"no answer within {self.timeout_s:g}s"
            elif future.cancelled():
                problems[name] = "check cancelled"
            elif isinstance(error := future.exception(), NotReady):
                problems[name] = str(error)
            elif error is not None:
                # The class only: a driver's message may name hosts or users.
                problems[name] = f"check failed: {type(error).__name__}"
        return problems

    async def handle(self, request: Request) -> Response:
        if self.draining:
            return json_response(
                503, {"status": "draining", "reason": "the server is shutting down"}
            )
        problems = await self.problems()
        if problems:
            log.debug("not ready: %s", problems)
            return json_response(503, {"status": "unavailable", "reason": problems})
        return json_response(200, {"status": "ready", "checked": sorted(self._checks)})

    async def close(self) -> None:
        """Wait a moment for checks still running, then give up on them."""
        pending = [future for future in self._running.values() if not future.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=self.timeout_s)
            for future in still:
                future.cancel()
        for future in self._running.values():
            if future.done() and not future.cancelled():
                with contextlib.suppress(Exception):
                    future.exception()  # retrieved: no "never retrieved" warning at exit


async def drain(
    readiness: Readiness, delay_s: float, signals: Iterable[signal.Signals]
) -> None:
    """Say "not ready" for ``delay_s`` while still serving, so the proxy moves new clients elsewhere.

    One more of ``signals`` ends the wait at once (the caller removes the handlers).
    """
    if delay_s <= 0:
        return
    readiness.draining = True
    log.info(
        "draining: /readyz answers 503 for %gs before websockets get 1001", delay_s
    )
    loop = asyncio.get_running_loop()
    again: asyncio.Future[None] = loop.create_future()

    def again_now() -> None:
        if not again.done():
            again.set_result(None)

    for sig in signals:
        loop.add_signal_handler(sig, again_now)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(again, delay_s)


@contextlib.contextmanager
def stop_signals() -> Iterator[asyncio.Future[signal.Signals]]:
    """A future set to the first of ``STOP_SIGNALS`` received while the block runs (later ones are ignored),
    handled by the event loop, so no ``KeyboardInterrupt`` is raised wherever the code happens to be."""
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[signal.Signals] = loop.create_future()

    def stop(sig: signal.Signals) -> None:
        if not stopped.done():
            stopped.set_result(sig)

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop, sig)
    try:
        yield stopped
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
