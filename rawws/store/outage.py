"""Telling a store outage from a bug, and logging an outage as two lines rather than a traceback per call.

While the database is down every operation fails the same way; one line says
when that started, one line when it ended with how many operations were
refused meanwhile. Callers answer 503 (HTTP) or ``unavailable`` (chat).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from rawws.errors import StoreUnavailable

log = logging.getLogger("rawws.store")

__all__ = ["RETRY_AFTER_S", "StoreHealth", "StoreUnavailable", "is_outage"]

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


class StoreHealth:
    """Whether the store is answering; logs the start and end of each outage once."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.down_since: float | None = None
        self.refused = 0  # operations refused in the current outage
        self.outages = 0  # outages seen since start

    @property
    def available(self) -> bool:
        return self.down_since is None

    def failed(self, exc: BaseException, operation: str) -> None:
        self.refused += 1
        if self.down_since is None:
            self.down_since = self.clock()
            self.outages += 1
            log.error(
                "store unavailable (%s failed: %s); refusing operations until it answers",
                operation,
                _summary(exc),
            )

    def succeeded(self) -> None:
        if self.down_since is None:
            return
        log.warning(
            "store available again after %.1f s; %d operation(s) refused meanwhile",
            self.clock() - self.down_since,
            self.refused,
        )
        self.down_since, self.refused = None, 0

    async def call(self, operation: str, awaitable: Awaitable[T]) -> T:
        """Await a store operation; an outage is counted and raised as ``StoreUnavailable``."""
        try:
            result = await awaitable
        except Exception as exc:
            if not is_outage(exc):
                raise
            self.failed(exc, operation)
            raise StoreUnavailable(operation) from None
        self.succeeded()
        return result
