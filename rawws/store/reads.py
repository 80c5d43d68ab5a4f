"""Read markers in SQL: ``SqlStore`` inherits these from ``ReadsSql``.

A member's marker (``room_members.last_read``) only grows: every write is one
``UPDATE … SET last_read = CASE WHEN last_read < :id THEN :id ELSE last_read END``,
so two nodes flushing in either order, or a late retry, never move it back. The
chat writes markers in batches (``rawws.chat.reads``), many members in one
transaction, never one write per ``read`` frame.

What counts as unread is decided in one place, ``unread_condition``: a ``say`` by
someone else after the marker, up to a bound. ``unread`` (a ``joined``) and
``visible_rooms`` (``rooms``, through ``unread_count``) both use it, so a rule
added later (a deleted message does not count) is added once.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from rawws.store.base import SAY
from rawws.store.names import username_key
from rawws.store.schema import messages, room_members


def unread_condition(
    room: Any, user_key: str, after: Any, upto: Any
) -> sa.ColumnElement[bool]:
    """The messages that count as unread for ``user_key`` in ``room``: ids in (after, upto],
    kind ``say``, not deleted, not their own. ``messages.user`` holds the name as registered; names are
    ASCII, where the key is the lower-cased name, so ``lower`` compares them by the key."""
    return sa.and_(
        messages.c.room == room,
        messages.c.id > after,
        messages.c.id <= upto,
        messages.c.kind == SAY,
        messages.c.deleted_at.is_(None),  # a deleted message is nothing to read
        sa.func.lower(messages.c.user) != user_key,
    )


def marker_in_force() -> sa.ColumnElement[Any]:
    """A membership's marker in force: the larger of ``last_read`` and ``since_id``."""
    return sa.case(
        (room_members.c.last_read > room_members.c.since_id, room_members.c.last_read),
        else_=room_members.c.since_id,
    )


def unread_count(room: Any, user_key: str, upto: Any) -> sa.ScalarSelect[Any]:
    """A correlated count of the member's unread messages (``visible_rooms``: one query for all rooms)."""
    return (
        sa.select(sa.func.count())
        .select_from(messages)
        .where(unread_condition(room, user_key, marker_in_force(), upto))
        .scalar_subquery()
    )


class ReadsSql:
    """The ``Reads`` part of the store."""

    engine: AsyncEngine

    async def save_read_markers(self, marks: list[tuple[str, str, int]]) -> None:
        """Move each (room, user key, id) marker forward to ``id``, all in one transaction.

        A marker already at or past ``id`` stays; a user no longer a member has no row and
        nothing is written. One statement executed for every mark (``executemany``).
        """
        if not marks:
            return
        target = sa.bindparam("b_id", type_=sa.BigInteger)
        statement = (
            room_members.update()
            .where(
                room_members.c.room == sa.bindparam("b_room"),
                room_members.c.user_key == sa.bindparam("b_key"),
            )
            .values(
                last_read=sa.case(
                    (room_members.c.last_read < target, target),
                    else_=room_members.c.last_read,
                )
            )
        )
        rows = [{"b_room": r, "b_key": k, "b_id": i} for r, k, i in marks]
        async with self.engine.begin() as conn:
            await conn.execute(statement, rows)

    async def unread(self, room: str, user: str, after: int, upto: int) -> int:
        """How many messages of ``room`` in (after, upto] are unread for ``user`` (``unread_condition``)."""
        if upto <= after:
            return 0
        query = sa.select(sa.func.count()).select_from(messages)
        query = query.where(unread_condition(room, username_key(user), after, upto))
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())
