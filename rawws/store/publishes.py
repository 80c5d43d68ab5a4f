"""Publishing exactly once, in SQL: ``SqlStore`` inherits ``publish_once`` and the sweep of old records.

``publish_once`` stores an application's message and, given an idempotency key, the record
``(api key, idempotency key) → (room, id, body hash)`` in ONE transaction, so either both are
stored or neither. Two calls with one idempotency key (two nodes, a retry racing the first
try) both find no record, and both try: the record's primary key lets one commit; the other's
insert fails (PostgreSQL waits for the winner's commit, then refuses; SQLite serialises the
writers, so the second sees the first's row), its transaction rolls back with its message and
its id, and it answers with the winner's record as a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rawws.store.base import NewMessage, StoredMessage
from rawws.store.edits import current_entries, stored_entry
from rawws.store.schema import api_publishes, messages, rooms

#: How long an idempotency key is remembered (the spec's window).
PUBLISH_WINDOW_S = 24 * 3600.0


class NoRoom(Exception):
    """The room is gone (deleted between the caller's check and the publish): nothing stored."""


class IdempotencyConflict(Exception):
    """The idempotency key was used with another body: nothing stored."""


@dataclass(frozen=True, slots=True)
class Published:
    """A publish's outcome: the message (as stored now) and whether an earlier call stored it.

    ``message`` is None only for a duplicate whose message is gone since (retention)."""

    room: str
    id: int
    message: StoredMessage | None
    duplicate: bool


class PublishesSql:
    """The exactly-once publish of the server API."""

    engine: AsyncEngine

    async def publish_once(
        self,
        key_id: str,
        idempotency_key: str | None,
        body_hash: str,
        item: NewMessage,
    ) -> Published:
        """Store ``item`` (its room must exist), recording ``idempotency_key`` with it when given.

        A record for (``key_id``, ``idempotency_key``) with the same ``body_hash`` makes it a
        duplicate: nothing stored, the first call's message returned; with another hash,
        ``IdempotencyConflict``. A room that does not exist: ``NoRoom``."""
        if idempotency_key is not None:
            found = await self._published(key_id, idempotency_key, body_hash)
            if found is not None:
                return found
        try:
            async with self.engine.begin() as conn:
                message = await self._append(conn, item)
                if idempotency_key is not None:
                    await conn.execute(
                        api_publishes.insert().values(
                            key_id=key_id,
                            idempotency_key=idempotency_key,
                            body_hash=body_hash,
                            room=item.room,
                            message_id=message.id,
                            created_at=item.ts,
                        )
                    )
        except IntegrityError:
            # another call with this idempotency key committed first: this one rolled back
            if idempotency_key is None:
                raise
            found = await self._published(key_id, idempotency_key, body_hash)
            if found is None:
                raise
            return found
        return Published(message.room, message.id, message, False)

    async def forget_publishes(self, before_ts: float) -> int:
        """Remove the idempotency records made before ``before_ts``; how many."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                api_publishes.delete().where(api_publishes.c.created_at < before_ts)
            )
            return int(result.rowcount or 0)

    async def _append(self, conn: AsyncConnection, item: NewMessage) -> StoredMessage:
        """The room's next id (its row locked, as every numbering does), then the message."""
        message_id = (
            await conn.execute(
                rooms.update()
                .where(rooms.c.name == item.room)
                .values(last_id=rooms.c.last_id + 1)
                .returning(rooms.c.last_id)
            )
        ).scalar_one_or_none()
        if message_id is None:
            raise NoRoom(item.room)
        message = StoredMessage(
            item.room,
            int(message_id),
            item.user,
            item.text,
            item.ts,
            app=item.app,
            stream=item.stream,
        )
        await conn.execute(
            messages.insert().values(
                room=item.room,
                id=message.id,
                user=item.user,
                text=item.text,
                ts=item.ts,
                app=item.app,
                stream=item.stream,
            )
        )
        return message

    async def _published(
        self, key_id: str, idempotency_key: str, body_hash: str
    ) -> Published | None:
        """The earlier call's outcome, as a duplicate; None if there was none."""
        async with self.engine.connect() as conn:
            record: Any = (
                await conn.execute(
                    sa.select(api_publishes).where(
                        api_publishes.c.key_id == key_id,
                        api_publishes.c.idempotency_key == idempotency_key,
                    )
                )
            ).first()
            if record is None:
                return None
            if record.body_hash != body_hash:
                raise IdempotencyConflict(idempotency_key)
            row = (
                await conn.execute(
                    current_entries().where(
                        messages.c.room == record.room,
                        messages.c.id == record.message_id,
                    )
                )
            ).first()
        message = None if row is None else stored_entry(row)
        return Published(record.room, int(record.message_id), message, True)
