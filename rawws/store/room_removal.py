"""Rooms as the server API manages them: made with or without an owner, listed by name, removed whole.

``SqlStore`` inherits these from ``RoomRemovalSql``. A room removed takes everything
stored of it in one transaction (its messages and events, members, read markers,
streams and the publishes recorded against it), so nothing of it is left to be
read back by a room made later under the same name: that room starts from id 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from rawws.store.base import DIRECT
from rawws.store.rooms import RoomsSql
from rawws.store.schema import (
    api_publishes,
    messages,
    room_members,
    rooms,
    streams,
    users,
)


@dataclass(frozen=True, slots=True)
class ListedRoom:
    """A room as ``list_rooms`` gives it: its owner as registered (None: no owner)."""

    room: str
    kind: str
    owner: str | None


def _named_by(patterns: tuple[str, ...]) -> sa.ColumnElement[bool]:
    """The SQL of ``rawws.apps.keys.room_matches``: a name exactly, or a prefix ending in ``*``."""
    clauses: list[sa.ColumnElement[bool]] = []
    for pattern in patterns:
        if pattern.endswith("*"):
            clauses.append(rooms.c.name.startswith(pattern[:-1], autoescape=True))
        else:
            clauses.append(rooms.c.name == pattern)
    return sa.or_(*clauses)


class RoomRemovalSql(RoomsSql):
    """The server API's part of the store's rooms (on the chat's: ``RoomsSql``)."""

    engine: AsyncEngine

    async def create_owned_room(self, room: str, kind: str, owner: str | None) -> bool:
        """Make ``room`` of ``kind``, ``owner`` (if any) its owner member from id 0, as the chat's
        ``create`` does (``RoomsSql.create_room``); False when the name is taken (a row exists)."""
        if owner is not None:
            return await self.create_room(room, kind, owner) is not None
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    rooms.insert().values(name=room, last_id=0, kind=kind, owner=None)
                )
        except IntegrityError:
            return False
        return True

    async def list_rooms(
        self, patterns: tuple[str, ...], prefix: str, limit: int
    ) -> list[ListedRoom]:
        """Rooms whose names start with ``prefix`` and that ``patterns`` name (none: every room),
        never a direct room, by name, at most ``limit``."""
        query = (
            sa.select(rooms.c.name, rooms.c.kind, users.c.username)
            .outerjoin(users, users.c.username_key == rooms.c.owner)
            .where(rooms.c.kind != DIRECT)
            .order_by(rooms.c.name)
            .limit(limit)
        )
        if prefix:
            query = query.where(rooms.c.name.startswith(prefix, autoescape=True))
        if patterns:
            query = query.where(_named_by(patterns))
        async with self.engine.connect() as conn:
            return [
                ListedRoom(row.name, row.kind, row.username)
                for row in await conn.execute(query)
            ]

    async def remove_room(self, room: str) -> bool:
        """Remove ``room`` and everything stored of it, in one transaction; False when it has no row.

        The room's row is locked first (an update that changes nothing), so a message
        being numbered in it at the same moment either commits before (and goes with
        the room) or waits and then makes a fresh public row of that name: the writer
        makes a room it finds missing, as it always has for a public room's first say.
        """
        async with self.engine.begin() as conn:
            locked = await conn.execute(
                rooms.update()
                .where(rooms.c.name == room)
                .values(last_id=rooms.c.last_id)
            )
            if not locked.rowcount:
                return False
            for table in (messages, room_members, streams, api_publishes):
                await conn.execute(table.delete().where(table.c.room == room))
            await conn.execute(rooms.delete().where(rooms.c.name == room))
        return True

    async def room_owner(self, room: str) -> str | None:
        """The owner of ``room`` as registered (None: no owner, or no such room)."""
        query = (
            sa.select(users.c.username)
            .join(rooms, users.c.username_key == rooms.c.owner)
            .where(rooms.c.name == room)
        )
        async with self.engine.connect() as conn:
            found = (await conn.execute(query)).scalar_one_or_none()
        return None if found is None else str(found)
