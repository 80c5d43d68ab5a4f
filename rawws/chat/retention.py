"""Retention at the edge: the background sweep that applies ``--history-max-age`` and
``--history-max-messages``, and the ``gap`` frame that tells a reconnecting client what
was cut before it could read it.

The sweep walks the rooms every ``interval_s``; each room's removal is small
transactions awaited one after another (``rawws.store.retention``), so the event loop
serves everyone meanwhile, and a store outage skips the round (the next one catches up).
With several nodes each sweeps: removing a prefix twice removes nothing more.

The same walk ends erased accounts' quarantine (``rawws.store.erasure.QUARANTINE_S``): the
rows of users erased longer ago are deleted and their names are free again. It runs here
because this is the one periodic store task every node has (whatever its retention flags),
and a name freed a minute late is no harm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from rawws.chat import wire
from rawws.chat.wire_retention import strictest
from rawws.store.erasure import QUARANTINE_S
from rawws.store.retention import RoomBounds

log = logging.getLogger("rawws.chat")

DEFAULT_SWEEP_INTERVAL_S = 60.0


class Kept(Protocol):
    """What the sweep needs of the store (``rawws.store.retention.RetentionSql``)."""

    def room_bounds(self) -> AsyncIterator[RoomBounds]: ...

    async def retention_cut(
        self, room: str, older_than: float | None, max_messages: int | None
    ) -> int: ...

    async def remove_through(self, room: str, cut: int) -> int: ...

    async def forget_erased(self, before_ts: float) -> int: ...


def gap(room: str, after: int, resumes_at: int) -> str:
    """``gap {room, after, resumes_at}``: what came after ``after`` up to ``resumes_at - 1``
    was removed by retention; the replay goes on from ``resumes_at``."""
    return wire.dumps(
        {"type": "gap", "room": room, "after": after, "resumes_at": resumes_at}
    )


POSITION_AHEAD = "position_ahead"  # a join's since is past the room's newest id


def ahead(room: str, since: int, newest: int) -> str:
    """``since`` is past ``room``'s newest id (from the future, or from before the room was
    deleted and made again): said, then the join starts after the newest; never a silent gap."""
    return wire.error(
        POSITION_AHEAD, f"{room} has no message {since}: starting after {newest}"
    )


class RetentionSweep:
    def __init__(
        self,
        store: Kept,
        max_age_s: float,
        max_messages: int,
        interval_s: float = DEFAULT_SWEEP_INTERVAL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.max_age_s = max_age_s  # 0: no age bound
        self.max_messages = max_messages  # 0: no count bound
        self.interval_s = interval_s
        self.clock = clock
        self.removed = 0  # entries removed since start (metrics, tests)
        self.forgotten = 0  # erased users whose quarantine ended, since start
        self._task: asyncio.Task[None] | None = None

    async def sweep_once(self) -> int:
        """One walk over every room; how many entries it removed. Then the erased users whose
        quarantine is over are forgotten (``forgotten`` counts them)."""
        now = self.clock()
        forgotten = await self.store.forget_erased(now - QUARANTINE_S)
        self.forgotten += forgotten
        if forgotten:
            log.info("%d erased account(s) forgotten: their names are free", forgotten)
        removed = 0
        async for bounds in self.store.room_bounds():
            age = strictest(self.max_age_s, bounds.max_age_s)
            keep = int(strictest(self.max_messages, bounds.max_messages))
            if not age and not keep:
                continue  # kept forever
            cut = await self.store.retention_cut(
                bounds.room, now - age if age else None, keep or None
            )
            if cut > 0:
                removed += await self.store.remove_through(bounds.room, cut)
        self.removed += removed
        if removed:
            log.info("retention removed %d stored entries", removed)
        return removed

    def start(self) -> None:
        """Sweep every ``interval_s`` from now on (rooms' owners may set bounds of their own)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.sweep_once()
            except Exception as exc:  # an outage: the next round catches up
                log.warning("retention sweep skipped: %s", type(exc).__name__)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
