"""Edits and deletions in SQL: ``SqlStore`` inherits ``change_message`` from ``EditsSql``, and
reads every stored entry in its current state through ``current_entries`` and ``stored_entry``.

An edit or a deletion is an event in the room's id sequence, like a membership event: it
takes the room's next id under the same row lock as a message, so every node delivers it
in its place. Its own row keeps no text: the message's row holds the current text, and
a deletion empties it (a redaction, not a hidden flag: who deleted it and when remain).
So an edit event read back (a ``since`` replay, a node repairing a gap) carries the
message's text as it is *now*, and "" once the message is deleted: no deleted text is
ever sent from the store again.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from rawws.store.base import (
    CHANGE_EVENTS,
    DELETED,
    EDITED,
    MODERATOR,
    OWNER,
    SAY,
    MessageNotFound,
    NotYours,
    StoredMessage,
)
from rawws.store.names import username_key
from rawws.store.schema import messages, room_members, rooms

log = logging.getLogger("rawws.store")

#: The message an edit event is about, joined to the event to give it its current text.
_about = messages.alias("about_message")

#: Stored roles that may delete anyone's message in their room.
DELETING_ROLES = (OWNER, MODERATOR)


def current_entries() -> sa.Select[Any]:
    """Every column of ``messages``, and of an edit event the current text and deletion of
    its message (``stored_entry`` reads them)."""
    return sa.select(
        messages,
        _about.c.text.label("about_text"),
        _about.c.deleted_by.label("about_deleted_by"),
        _about.c.deleted_at.label("about_deleted_at"),
    ).outerjoin(
        _about,
        sa.and_(
            messages.c.kind == EDITED,
            _about.c.room == messages.c.room,
            _about.c.id == messages.c.about,
        ),
    )


def history_entries() -> sa.Select[Any]:
    """Messages (in their current state) and membership events: never an edit or deletion event."""
    return sa.select(messages).where(messages.c.kind.not_in(CHANGE_EVENTS))


def stored_entry(row: Any) -> StoredMessage:
    """One row of ``current_entries`` or ``history_entries`` as the chat sends it."""
    if row.kind == EDITED:  # its message's text now, "" with its tombstone once deleted
        deleted_at = row.about_deleted_at
        if row.about_text is None:  # the message itself went with retention: gone too
            deleted_at = row.ts
        return StoredMessage(
            row.room,
            row.id,
            row.user,
            "" if deleted_at is not None else (row.about_text or ""),
            row.ts,
            row.kind,
            None,
            row.about,
            deleted_by=row.about_deleted_by,
            deleted_at=deleted_at,
        )
    return StoredMessage(
        row.room,
        row.id,
        row.user,
        row.text,
        row.ts,
        row.kind,
        row.target,
        row.about,
        row.edited_at,
        row.deleted_by,
        row.deleted_at,
        bool(row.app),
        row.stream,
    )


class EditsSql:
    """The ``Edits`` part of the store."""

    engine: AsyncEngine

    async def change_message(
        self, room: str, message_id: int, actor: str, text: str | None, ts: float
    ) -> StoredMessage:
        """``actor`` edits message ``message_id`` of ``room`` to ``text``, or deletes it (``text`` None).

        One transaction: the room's next id is taken first (``UPDATE rooms … RETURNING``,
        which locks the room's row as a message's numbering does), then the message and the
        actor's stored role are read under that lock, so no other change of the room comes
        between the check and the change. Its author may edit and delete it (never so an
        application's message, ``app``: a user with the key's name is not its author); the
        room's owner and moderators may delete it too. Else ``MessageNotFound`` (not a message of
        the room, or deleted already) or ``NotYours``, and nothing is stored (the id is not
        taken either: the transaction rolls back).

        Returns the event: an edit's carries the new text (for live delivery; its row keeps none).
        """
        kind = DELETED if text is None else EDITED
        async with self.engine.begin() as conn:
            event_id = (
                await conn.execute(
                    rooms.update()
                    .where(rooms.c.name == room)
                    .values(last_id=rooms.c.last_id + 1)
                    .returning(rooms.c.last_id)
                )
            ).scalar_one_or_none()
            if event_id is None:
                raise MessageNotFound(f"no room {room}")
            found = (
                await conn.execute(
                    sa.select(
                        messages.c.user,
                        messages.c.kind,
                        messages.c.deleted_at,
                        messages.c.app,
                    ).where(messages.c.room == room, messages.c.id == message_id)
                )
            ).first()
            if found is None or found.kind != SAY or found.deleted_at is not None:
                raise MessageNotFound(f"no message {message_id} in {room}")
            # an application's message is nobody's own: a user named like the key may not
            # edit it, and may delete it only as the room's owner or a moderator
            if found.app or username_key(found.user) != username_key(actor):
                # someone else's: only a deletion, by the room's owner or a moderator
                role = None
                if text is None:
                    role = (
                        await conn.execute(
                            sa.select(room_members.c.role).where(
                                room_members.c.room == room,
                                room_members.c.user_key == username_key(actor),
                            )
                        )
                    ).scalar_one_or_none()
                if role not in DELETING_ROLES:
                    raise NotYours(f"message {message_id} of {room} is {found.user}'s")
            await conn.execute(
                messages.insert().values(
                    room=room,
                    id=event_id,
                    user=actor,
                    text="",  # an event keeps no text: the message's row has it
                    ts=ts,
                    kind=kind,
                    about=message_id,
                )
            )
            change: dict[str, object] = (
                {"text": text, "edited_at": ts}
                if text is not None
                else {"text": "", "deleted_by": actor, "deleted_at": ts}
            )
            await conn.execute(
                messages.update()
                .where(messages.c.room == room, messages.c.id == message_id)
                .values(**change)
            )
        if text is None:
            await self._forget_deleted_text()
        return StoredMessage(
            room, int(event_id), actor, text or "", ts, kind, None, message_id
        )

    async def _forget_deleted_text(self) -> None:
        """SQLite: copy the WAL into the file and empty it, so the deleted text leaves the WAL now.

        ``secure_delete`` (``rawws.store.opening``) zeroes the text in the database file once
        the change is checkpointed; until then the WAL still holds the page that had it. A
        checkpoint that cannot finish (a reader holds an older snapshot) is left to SQLite's
        own next checkpoint: the deletion stands either way.
        """
        if self.engine.dialect.name != "sqlite":
            return
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except Exception:
            log.warning("checkpoint after a deletion failed", exc_info=True)
