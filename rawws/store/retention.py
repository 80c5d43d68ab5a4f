"""Retention: a room's oldest entries removed from the database, never a younger one.

What is removed is always a *prefix* of the room's sequence (ids 1..n): ids are given
without gaps, so the first id still kept tells a reader exactly where what is kept
begins, and a ``since`` older than that is told it was cut (``rawws.chat.retention``),
never handed a silent gap. An entry goes only when it *and every entry before it*
is older than the age bound (the clocks of several nodes need not agree to keep the
promise: a younger entry is never removed, at worst an older one waits), or when more
than ``max_messages`` messages (``say``) come after it.

Removal runs in small transactions (``SWEEP_BATCH`` rows each) so that a room of a
million old messages never holds the room's row, or SQLite's one writer, for long.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from rawws.store.base import SAY
from rawws.store.schema import messages, rooms

SWEEP_BATCH = 500  # rows removed per transaction
ROOMS_PAGE = 500  # rooms read per query while sweeping


@dataclass(frozen=True, slots=True)
class RoomBounds:
    """A room's own retention: 0 where it has none of its own."""

    room: str
    max_age_s: float
    max_messages: int


class RetentionSql:
    engine: AsyncEngine

    _insert_room_if_missing: Callable[[str], sa.Executable]  # ``RoomsSql``'s

    async def kept_from(self, room: str) -> int:
        """The lowest id of ``room`` still stored (its last id + 1 when none is)."""
        async with self.engine.connect() as conn:
            lowest = (
                await conn.execute(
                    sa.select(sa.func.min(messages.c.id)).where(messages.c.room == room)
                )
            ).scalar()
            if lowest is not None:
                return int(lowest)
            last = (
                await conn.execute(
                    sa.select(rooms.c.last_id).where(rooms.c.name == room)
                )
            ).scalar()
        return int(last or 0) + 1

    async def room_bounds(self) -> AsyncIterator[RoomBounds]:
        """Every room with a stored sequence and its own bounds, a page at a time (the sweep's walk)."""
        after = ""
        while True:
            async with self.engine.connect() as conn:
                page = (
                    await conn.execute(
                        sa.select(rooms.c.name, rooms.c.max_age_s, rooms.c.max_messages)
                        .where(rooms.c.name > after)
                        .order_by(rooms.c.name)
                        .limit(ROOMS_PAGE)
                    )
                ).all()
            for row in page:
                yield RoomBounds(row.name, row.max_age_s or 0.0, row.max_messages or 0)
            if len(page) < ROOMS_PAGE:
                return
            after = page[-1].name

    async def set_room_retention(
        self, room: str, max_age_s: float, max_messages: int
    ) -> None:
        """A room's own bounds (0: none of its own); the room's row is made if need be."""
        async with self.engine.begin() as conn:
            await conn.execute(self._insert_room_if_missing(room))
            await conn.execute(
                rooms.update()
                .where(rooms.c.name == room)
                .values(max_age_s=max_age_s or None, max_messages=max_messages or None)
            )

    async def room_retention(self, room: str) -> RoomBounds:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(rooms.c.max_age_s, rooms.c.max_messages).where(
                        rooms.c.name == room
                    )
                )
            ).first()
        if row is None:
            return RoomBounds(room, 0.0, 0)
        return RoomBounds(room, row.max_age_s or 0.0, row.max_messages or 0)

    async def retention_cut(
        self, room: str, older_than: float | None, max_messages: int | None
    ) -> int:
        """The highest id the bounds let go (0: nothing): the prefix ``1..cut`` may be removed.

        ``older_than``: remove entries stored before this time (epoch seconds), as far
        as every entry before them is too; ``max_messages``: keep this many messages.
        """
        cut = 0
        async with self.engine.connect() as conn:
            if older_than is not None:
                young = (
                    await conn.execute(
                        sa.select(sa.func.min(messages.c.id)).where(
                            messages.c.room == room, messages.c.ts >= older_than
                        )
                    )
                ).scalar()
                if young is not None:
                    cut = int(young) - 1
                else:  # everything stored is older: all of it
                    cut = int(
                        (
                            await conn.execute(
                                sa.select(sa.func.max(messages.c.id)).where(
                                    messages.c.room == room
                                )
                            )
                        ).scalar()
                        or 0
                    )
            if max_messages is not None:
                oldest_kept = (
                    await conn.execute(
                        sa.select(messages.c.id)
                        .where(messages.c.room == room, messages.c.kind == SAY)
                        .order_by(messages.c.id.desc())
                        .offset(max_messages - 1)
                        .limit(1)
                    )
                ).scalar()
                if oldest_kept is not None:
                    cut = max(cut, int(oldest_kept) - 1)
        return cut

    async def remove_through(self, room: str, cut: int) -> int:
        """Remove ``room``'s entries with ids up to ``cut``, one small transaction at a
        time (the oldest first, so what is kept stays a suffix); how many went."""
        removed = 0
        while True:
            async with self.engine.begin() as conn:
                lowest = (
                    await conn.execute(
                        sa.select(sa.func.min(messages.c.id)).where(
                            messages.c.room == room
                        )
                    )
                ).scalar()
                if lowest is None or lowest > cut:
                    return removed
                upto = min(cut, int(lowest) + SWEEP_BATCH - 1)
                result = await conn.execute(
                    messages.delete().where(
                        messages.c.room == room, messages.c.id <= upto
                    )
                )
                removed += result.rowcount or 0
