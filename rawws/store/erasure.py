"""Account erasure in SQL: ``SqlStore`` inherits ``erase_user`` and ``forget_erased`` from ``ErasureSql``.

Erasing a user takes back everything they said and everything that lets them in:

* each of their messages still there is redacted exactly as a deletion by ``by`` is
  (``rawws.store.edits``): a ``deleted`` event with its own id in the room's sequence,
  the message's text emptied, a tombstone (who deleted it, when) left, so every member,
  every node and every ``since`` replay sees the deletions in order;
* their refresh tokens and their memberships (roles, read markers, bans) are deleted, and
  the rooms they own are owned by nobody;
* their ``users`` row is disabled, stamped (every token of theirs stops, on every node:
  ``rawws.store.stops``), its password hash replaced by one no password verifies, and
  ``erased_at`` set. The row itself stays for ``QUARANTINE_S``: while it is there the name
  (and every look-alike) stays taken, so nobody takes the name over at once and is taken
  for the erased user. ``forget_erased`` deletes the rows whose quarantine is over: the
  name is free again.

Who may erase is decided by the caller, never here (``erase_user`` checks no role): the
HTTP route after the user's own password (``rawws.accounts.erasure``), `rawws admin erase`
on the server's machine (who may open the database may do anything to it anyway).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rawws.store.base import DELETED, SAY, Stamp, StoredMessage
from rawws.store.edits import EditsSql
from rawws.store.names import username_key
from rawws.store.schema import messages, refresh_tokens, room_members, rooms, users
from rawws.store.stops import STEP_S

#: How long an erased user's name stays taken (30 days): long enough that their contacts
#: notice the account is gone before anyone else can register the name.
QUARANTINE_S = 30 * 24 * 3600.0

#: A ``password_hash`` no password verifies: not an argon2 hash, so ``verify`` is False.
UNUSABLE_PASSWORD_HASH = "!erased"

#: At most this many passes over the user's messages: a message of theirs stored while the
#: first pass ran (accepted just before their connections closed) is redacted by the next.
REDACTION_PASSES = 3


class ErasureSql(EditsSql):
    """The ``Erasure`` part of the store (a deletion's checkpoint is ``EditsSql``'s)."""

    engine: AsyncEngine

    async def erase_user(
        self, username: str, by: str, ts: float
    ) -> tuple[Stamp | None, list[StoredMessage]]:
        """Erase ``username`` (see the module): ``(stamp, deleted events)``, ``(None, [])`` when
        there is no such user.

        The account is stopped first (one transaction: the row marked, tokens and memberships
        deleted), so no new login or connection of theirs starts while their messages are
        redacted, one room per transaction (each room's lock held as a deletion holds it).
        The caller hands the stamp to ``StopBook.stamped`` (their connections close here at
        once, elsewhere at the next poll or bus event) and the events to the chat's feed.
        """
        key = username_key(username)
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(users.c.id, users.c.not_before)
                    .where(users.c.username_key == key)
                    .with_for_update()
                )
            ).first()
            if row is None:
                return None, []
            # always forward, as a disable's (``stops.set_disabled``): a poll reads only stamps that moved
            not_before = max(ts, float(row.not_before) + STEP_S)
            await conn.execute(
                users.update()
                .where(users.c.id == row.id)
                .values(
                    disabled=True,
                    not_before=not_before,
                    password_hash=UNUSABLE_PASSWORD_HASH,
                    erased_at=ts,
                )
            )
            await conn.execute(
                refresh_tokens.delete().where(refresh_tokens.c.user_id == row.id)
            )
            await conn.execute(
                room_members.delete().where(room_members.c.user_key == key)
            )
            await conn.execute(
                rooms.update().where(rooms.c.owner == key).values(owner=None)
            )
        events: list[StoredMessage] = []
        for _ in range(REDACTION_PASSES):
            found = await self._redact_all(key, by, ts)
            if not found:
                break
            events.extend(found)
        if events:
            await self._forget_deleted_text()
        return Stamp(key, not_before, True), events

    async def _redact_all(self, key: str, by: str, ts: float) -> list[StoredMessage]:
        """One pass: every message of the user not deleted yet, redacted room by room."""
        async with self.engine.connect() as conn:
            found = (
                await conn.execute(
                    sa.select(messages.c.room)
                    .where(*_theirs(key))
                    .distinct()
                    .order_by(messages.c.room)
                )
            ).all()
        events: list[StoredMessage] = []
        for (room,) in found:
            async with self.engine.begin() as conn:
                events.extend(await _redact_room(conn, room, key, by, ts))
        return events

    async def forget_erased(self, before_ts: float) -> int:
        """Delete the rows of users erased before ``before_ts``: their names are free again."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                users.delete().where(
                    users.c.erased_at.is_not(None), users.c.erased_at < before_ts
                )
            )
        return int(result.rowcount or 0)


def _theirs(key: str) -> tuple[sa.ColumnElement[bool], ...]:
    """A ``say`` of the user (names are ASCII: their key is the name lowered) still there."""
    return (
        messages.c.kind == SAY,
        messages.c.deleted_at.is_(None),
        sa.func.lower(messages.c.user) == key,
    )


async def _redact_room(
    conn: AsyncConnection, room: str, key: str, by: str, ts: float
) -> list[StoredMessage]:
    """Every message of the user in ``room`` deleted by ``by``, in one transaction: the rows
    ``Edits.change_message`` would store for each, one after another (ids in message order).

    The room's row is locked first (an ``UPDATE`` that moves nothing), as a message's
    numbering locks it, so no other entry of the room is numbered between these events.
    """
    await conn.execute(
        rooms.update().where(rooms.c.name == room).values(last_id=rooms.c.last_id)
    )
    ids = [
        int(message_id)
        for (message_id,) in await conn.execute(
            sa.select(messages.c.id)
            .where(messages.c.room == room, *_theirs(key))
            .order_by(messages.c.id)
        )
    ]
    if not ids:
        return []
    last = (
        await conn.execute(
            rooms.update()
            .where(rooms.c.name == room)
            .values(last_id=rooms.c.last_id + len(ids))
            .returning(rooms.c.last_id)
        )
    ).scalar_one()
    first = int(last) - len(ids) + 1
    events = [
        StoredMessage(room, first + n, by, "", ts, DELETED, None, message_id)
        for n, message_id in enumerate(ids)
    ]
    await conn.execute(
        messages.insert(),
        [
            dict(room=room, id=e.id, user=by, text="", ts=ts, kind=DELETED)
            | dict(about=e.about)
            for e in events
        ],
    )
    await conn.execute(
        messages.update()
        .where(messages.c.room == room, messages.c.id.in_(ids))
        .values(text="", deleted_by=by, deleted_at=ts)
    )
    return events
