"""One periodic sweep per event loop for every open WebSocket's deadlines, instead of timers per connection.

A timer per connection and per ping (asyncio's ``call_later``: a handle on the
loop's heap, created and cancelled over and over) costs every handshake and
every idle connection something. Instead each open session registers here and
one callback, every ``period_s``, asks each session whose next deadline has
passed what is due (``rawws.core.keepalive``; token expiry). Deadlines are
thereby late by at most one period, which is chosen a fraction of the
shortest timeout it serves (and at most one second).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from typing import Protocol

log = logging.getLogger("rawws.server")

MAX_PERIOD_S = 1.0
MIN_PERIOD_S = 0.02
PERIODS_PER_TIMEOUT = 4  # a deadline is at most a quarter of its timeout late


class Swept(Protocol):
    @property
    def next_deadline(self) -> float | None:
        """The loop time at which ``sweep`` has something to do (``None``: nothing ever)."""
        ...

    def sweep(self, now: float) -> None: ...


@functools.lru_cache(
    maxsize=64
)  # asked once per connection, with the same few settings
def sweep_period(*timeouts_s: float | None) -> float:
    """The period that keeps every positive timeout within a quarter of itself."""
    positive = [t for t in timeouts_s if t is not None and t > 0]
    if not positive:
        return MAX_PERIOD_S
    return max(MIN_PERIOD_S, min(MAX_PERIOD_S, min(positive) / PERIODS_PER_TIMEOUT))


class Sweeper:
    """The registered sessions of one loop and period, swept together; no timer runs while none is registered."""

    __slots__ = ("_loop", "period_s", "_members", "_handle", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop, period_s: float) -> None:
        self._loop = loop
        self.period_s = period_s
        self._members: dict[Swept, None] = {}
        self._handle: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._members)

    def add(self, member: Swept) -> None:
        self._members[member] = None
        if self._handle is None:
            self._handle = self._loop.call_later(self.period_s, self._sweep)

    def discard(self, member: Swept) -> None:
        self._members.pop(member, None)

    def _sweep(self) -> None:
        self._handle = None
        now = self._loop.time()
        for member in list(self._members):
            deadline = member.next_deadline
            if deadline is not None and deadline <= now:
                try:
                    member.sweep(now)
                except (
                    Exception
                ):  # one broken session must not stop the others' keepalive
                    log.exception("keepalive sweep failed")
                    self._members.pop(member, None)
        if self._members:
            self._handle = self._loop.call_later(self.period_s, self._sweep)


_sweepers: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[float, Sweeper]
] = weakref.WeakKeyDictionary()


_last: Sweeper | None = (
    None  # the one asked for last: almost always the one asked for next
)


def sweeper_for(loop: asyncio.AbstractEventLoop, period_s: float) -> Sweeper:
    global _last
    last = _last
    if last is not None and last._loop is loop and last.period_s == period_s:
        return last
    by_period = _sweepers.get(loop)
    if by_period is None:
        by_period = _sweepers[loop] = {}
    sweeper = by_period.get(period_s)
    if sweeper is None:
        sweeper = by_period[period_s] = Sweeper(loop, period_s)
    _last = sweeper
    return sweeper
