"""Streamed messages in SQL: ``SqlStore`` inherits these from ``StreamsSql``.

An application opens a stream in a room, appends text to it chunk by chunk, then
finishes it: the whole text becomes one message of the room (``app`` and ``stream``
set), numbered in the room's sequence like any other. While it is open the row
holds the text so far, so a member who joins mid-stream, or a node that missed a
chunk, reads it here; nothing of an open stream takes an id in the room.

* An append locks the stream's row by writing it first (``UPDATE … WHERE message_id
  IS NULL``), then reads and extends the text: appends at once take their turns, and
  none lands after the finish (which locks the same row).
* The finish is one transaction: the stream's row locked (written first), the
  message numbered and inserted, the row given its ``message_id``. A second finish finds the id and returns the same
  message, so a retry, or two nodes finishing an idle stream at once, store it once.
* A finished row keeps no text (the message holds it: a deletion of the message
  must not leave a copy here) and is forgotten after a day (``forget_finished_streams``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rawws.store.base import DIRECT, NewMessage, StoredMessage, StreamState
from rawws.store.edits import stored_entry
from rawws.store.schema import messages, rooms, streams

STREAM_ID_BYTES = 16  # 22 URL-safe characters (``streams.id`` holds 32)
APPEND_ATTEMPTS = (
    8  # appends racing on one stream: each retry follows another's success
)


class NoSuchStream(Exception):
    """No open or finished stream by that id for that publisher (or its room is gone)."""


class StreamFinished(Exception):
    """The stream was finished already: nothing was appended."""


class StreamTooLong(Exception):
    """The append would take the stream past its limit of text: nothing was appended."""


@dataclass(frozen=True, slots=True)
class Finished:
    """A finished stream: its message's place, the message itself (None when retention has
    removed it since), and whether this finish stored it (False: it was finished before)."""

    room: str
    id: int
    message: StoredMessage | None
    first: bool


class StreamsSql:
    """The streamed messages' part of the store."""

    engine: AsyncEngine

    if (
        TYPE_CHECKING
    ):  # numbering, shared with ``append_messages`` (``rawws.store.sql``)

        async def _number_in_room(
            self, conn: AsyncConnection, room: str, items: list[NewMessage]
        ) -> list[StoredMessage]: ...

    async def open_stream(self, room: str, user: str, now: float) -> str | None:
        """A new open stream of ``user`` in ``room``: its id; None when the room does not
        exist or is a direct room (no application writes between two users)."""
        stream_id = secrets.token_urlsafe(STREAM_ID_BYTES)
        async with self.engine.begin() as conn:
            kind = (
                await conn.execute(sa.select(rooms.c.kind).where(rooms.c.name == room))
            ).scalar_one_or_none()
            if kind is None or kind == DIRECT:
                return None
            await conn.execute(
                streams.insert().values(
                    id=stream_id,
                    room=room,
                    user=user,
                    text="",
                    chunks=0,
                    opened_at=now,
                    updated_at=now,
                    message_id=None,
                )
            )
        return stream_id

    async def append_stream(
        self, stream_id: str, user: str, text: str, max_chars: int, now: float
    ) -> StreamState:
        """Add ``text`` to ``user``'s open stream: the stream afterwards (``chunks`` is this
        chunk's seq). ``NoSuchStream`` (unknown, or another publisher's), ``StreamFinished``,
        ``StreamTooLong`` (past ``max_chars`` in all): then nothing is appended.

        The row is written first (``updated_at``), which locks it (PostgreSQL: the row;
        SQLite: the database) until the commit: appends at once take their turns, and each
        reads the text as the one before it left it."""
        async with self.engine.begin() as conn:
            locked = await conn.execute(
                streams.update()
                .where(
                    streams.c.id == stream_id,
                    streams.c.user == user,
                    streams.c.message_id.is_(None),
                )
                .values(updated_at=now)
            )
            if locked.rowcount != 1:
                found = (
                    await conn.execute(
                        sa.select(streams.c.user).where(streams.c.id == stream_id)
                    )
                ).scalar_one_or_none()
                if found != user:
                    raise NoSuchStream(stream_id)
                raise StreamFinished(stream_id)
            row = (
                await conn.execute(sa.select(streams).where(streams.c.id == stream_id))
            ).one()
            whole = row.text + text
            if len(whole) > max_chars:
                raise StreamTooLong(stream_id)  # rolled back: not even updated_at
            chunks = int(row.chunks) + 1
            await conn.execute(
                streams.update()
                .where(streams.c.id == stream_id)
                .values(text=whole, chunks=chunks)
            )
        return StreamState(stream_id, row.room, user, whole, chunks, now)

    async def finish_stream(
        self, stream_id: str, user: str | None, ts: float
    ) -> Finished:
        """Store the stream's whole text as one message of its room, the first time; the
        message it became, every time. ``user`` None: the server finishes it (an idle stream), whoever opened it.
        ``NoSuchStream`` when it is unknown, another publisher's, or its room is gone (the
        stream is dropped then: nothing could ever finish it)."""
        async with self.engine.begin() as conn:
            # A write first locks the row (PostgreSQL: the row; SQLite: the database) until
            # the commit, so two finishes (or a finish and an append) take their turns.
            await conn.execute(
                streams.update()
                .where(streams.c.id == stream_id)
                .values(updated_at=streams.c.updated_at)
            )
            row = (
                await conn.execute(sa.select(streams).where(streams.c.id == stream_id))
            ).first()
            if row is None or (user is not None and row.user != user):
                raise NoSuchStream(stream_id)
            finished_id = row.message_id
            if finished_id is None:
                item = NewMessage(
                    row.room, row.user, row.text, ts, app=True, stream=stream_id
                )
                numbered = await self._number_in_room(conn, row.room, [item])
                if not numbered:  # the room was deleted under it
                    await conn.execute(
                        streams.delete().where(streams.c.id == stream_id)
                    )
                else:
                    await conn.execute(
                        streams.update()
                        .where(streams.c.id == stream_id)
                        .values(text="", message_id=numbered[0].id, updated_at=ts)
                    )
                    return Finished(row.room, numbered[0].id, numbered[0], True)
        if finished_id is None:
            raise NoSuchStream(stream_id)
        message = await self._stored(row.room, int(finished_id))
        return Finished(row.room, int(finished_id), message, False)

    async def _stored(self, room: str, message_id: int) -> StoredMessage | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(messages).where(
                        messages.c.room == room, messages.c.id == message_id
                    )
                )
            ).first()
        return None if row is None else stored_entry(row)

    async def stream_state(self, stream_id: str) -> StreamState | None:
        """The stream as stored (open or finished), or None when there is no such stream."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(streams).where(streams.c.id == stream_id))
            ).first()
        return None if row is None else _state(row)

    async def open_streams(self, room: str) -> list[StreamState]:
        """The streams of ``room`` still open, oldest first (a member joining mid-stream)."""
        async with self.engine.connect() as conn:
            result = await conn.execute(
                sa.select(streams)
                .where(streams.c.room == room, streams.c.message_id.is_(None))
                .order_by(streams.c.opened_at, streams.c.id)
            )
            return [_state(row) for row in result]

    async def idle_streams(self, before: float, limit: int) -> list[StreamState]:
        """Up to ``limit`` open streams with no append since ``before``, the longest idle first."""
        async with self.engine.connect() as conn:
            result = await conn.execute(
                sa.select(streams)
                .where(streams.c.message_id.is_(None), streams.c.updated_at < before)
                .order_by(streams.c.updated_at)
                .limit(limit)
            )
            return [_state(row) for row in result]

    async def discard_stream(self, stream_id: str) -> bool:
        """Drop an open stream that never had a chunk (an idle one: there is nothing to store)."""
        async with self.engine.begin() as conn:
            done = await conn.execute(
                streams.delete().where(
                    streams.c.id == stream_id,
                    streams.c.chunks == 0,
                    streams.c.message_id.is_(None),
                )
            )
        return bool(done.rowcount)

    async def forget_finished_streams(self, before: float) -> int:
        """Forget streams finished before ``before``: a finish retried later is a 404 then."""
        async with self.engine.begin() as conn:
            done = await conn.execute(
                streams.delete().where(
                    streams.c.message_id.is_not(None), streams.c.updated_at < before
                )
            )
        return int(done.rowcount or 0)


def _state(row: Any) -> StreamState:
    return StreamState(
        row.id,
        row.room,
        row.user,
        row.text,
        int(row.chunks),
        float(row.updated_at),
        None if row.message_id is None else int(row.message_id),
    )
