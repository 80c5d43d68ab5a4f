"""Telling a store outage from a bug, logging it as two lines, and saying whether the node is ready meanwhile.

While the database is down every operation fails the same way; one line says
when that started, one line when it ended with how many operations were
refused meanwhile. Callers answer 503 (HTTP) or ``unavailable`` (chat).

An outage is not always total: on a full disk (or a role that lost INSERT)
``SELECT 1`` and every read succeed while every write fails. Ending the outage
at the first success then logs a start and an end per failed write (48 + 47
lines in 10 s were seen), and a readiness probe of ``SELECT 1`` calls the
node ready. So an outage ends only when (1) every operation that failed in it
has succeeded since (a read's success says nothing of the writes), and (2) no
operation has failed for ``recovery_s`` (a store that flaps stays in one
outage), and then only at a success: an operation's or the readiness probe's.
During an outage the readiness probe writes (``write_probe``), so its success
vouches for every operation. An operation nobody tries again cannot hold the
node forever: after ``forget_s`` without any failure, any success ends the
outage. Until it ends, the readiness check (``check``) says the node is not
ready and why; a probe that fails starts an outage too (logged, not counted
as a refused operation).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from rawws.errors import StoreUnavailable
from rawws.server.readiness import NotReady

log = logging.getLogger("rawws.store")

__all__ = [
    "RETRY_AFTER_S",
    "StoreHealth",
    "StoreUnavailable",
    "is_outage",
    "write_probe",
]

T = TypeVar("T")
RETRY_AFTER_S = 5  # what a refused HTTP client is told to wait


def is_outage(exc: BaseException) -> bool:
    """A database that cannot be reached or answered with an error of its own (not a constraint)."""
    if isinstance(exc, IntegrityError):
        return False
    return isinstance(exc, (SQLAlchemyError, OSError, TimeoutError))


def _summary(exc: BaseException) -> str:
    first_line = (str(exc).splitlines() or [""])[0][:160]
    return f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__


RECOVERY_S = 5.0  # an outage ends only after this long without a failure
FORGET_S = 60.0  # ... and after this long, even if an operation that failed was not tried again
PROBE = "readiness probe"  # the operation name of the readiness check's probe


class StoreHealth:
    """Whether the store is answering; logs the start and end of each outage once; the readiness check."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        recovery_s: float = RECOVERY_S,
        forget_s: float = FORGET_S,
    ) -> None:
        self.clock = clock
        self.recovery_s = recovery_s
        self.forget_s = max(forget_s, recovery_s)
        self.down_since: float | None = None
        self.refused = 0  # operations refused in the current outage
        self.outages = 0  # outages seen since start
        self.last_failure = 0.0
        #: operation → the class of its last error, for those not yet succeeded since
        self.failing: dict[str, str] = {}

    @property
    def available(self) -> bool:
        return self.down_since is None

    def failed(self, exc: BaseException, operation: str) -> None:
        """``operation`` failed with an outage error: refused, and the outage starts or goes on."""
        self.refused += 1
        self._failure(exc, operation)

    def _failure(self, exc: BaseException, operation: str) -> None:
        self.last_failure = self.clock()
        self.failing[operation] = type(exc).__name__
        if self.down_since is None:
            self.down_since = self.last_failure
            self.outages += 1
            log.error(
                "store unavailable (%s failed: %s); refusing operations until it answers",
                operation,
                _summary(exc),
            )

    def succeeded(
        self, operation: str | None = None, *, writes_too: bool = False
    ) -> None:
        """``operation`` succeeded (``writes_too``: a write probe, which vouches for every operation).

        The outage ends here if it has been quiet long enough (the module docstring says when).
        """
        if self.down_since is None:
            return
        if writes_too:
            self.failing.clear()
        elif operation is not None:
            self.failing.pop(operation, None)
        quiet = self.clock() - self.last_failure
        if quiet < self.recovery_s or (self.failing and quiet < self.forget_s):
            return
        log.warning(
            "store available again after %.1f s; %d operation(s) refused meanwhile",
            self.clock() - self.down_since,
            self.refused,
        )
        self.down_since, self.refused = None, 0
        self.failing.clear()

    def problem(self) -> str | None:
        """Why the store keeps the node from being ready (no driver message: it may name hosts), or ``None``."""
        if self.down_since is None:
            return None
        failing = ", ".join(
            f"{operation} ({error})"
            for operation, error in sorted(self.failing.items())
        )
        return (
            f"outage for {self.clock() - self.down_since:.0f} s, {self.refused} operation(s) refused"
            + (
                f"; still failing: {failing}"
                if failing
                else "; waiting for it to stay up"
            )
        )

    async def check(
        self,
        ping: Callable[[], Awaitable[object]],
        write: Callable[[], Awaitable[object]],
    ) -> None:
        """The readiness check: ``ping`` answers, and no outage is under way.

        During an outage the probe writes too (``write``): ``SELECT 1`` works on
        a full disk, so only a write can say that writes work again.
        """
        down = self.down_since is not None
        try:
            await ping()
            if down:
                await write()
        except Exception as exc:
            if not is_outage(exc):
                raise
            self._failure(exc, PROBE)  # not an operation refused: not counted
            raise NotReady(self.problem() or PROBE) from None
        self.succeeded(PROBE, writes_too=down)
        problem = self.problem()
        if problem is not None:
            raise NotReady(problem)

    async def call(self, operation: str, awaitable: Awaitable[T]) -> T:
        """Await a store operation; an outage is counted and raised as ``StoreUnavailable``."""
        try:
            result = await awaitable
        except Exception as exc:
            if not is_outage(exc):
                raise
            self.failed(exc, operation)
            raise StoreUnavailable(operation) from None
        self.succeeded(operation)
        return result


async def write_probe(engine: AsyncEngine) -> None:
    """A write that leaves the database as it was: ``schema_version``'s row changed and changed back, committed.

    It must change: SQLite skips an UPDATE that writes a row as it is, and a
    write that writes nothing proves nothing. Run only during an outage.
    """
    flip = sa.text("UPDATE schema_version SET version = -1 - version")
    async with engine.begin() as conn:
        await conn.execute(flip)
        await conn.execute(flip)
