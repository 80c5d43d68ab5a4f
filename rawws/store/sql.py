"""The SQL store: SQLAlchemy 2 Core on asyncio, SQLite (aiosqlite) or PostgreSQL (asyncpg).

The schema is created on start and its version recorded in ``schema_version``;
a database written by a newer rawws is refused rather than misread. The tables
and the migrations from older versions are ``rawws.store.schema``. Opening one (the URL checked,
the SQLite file made private, the driver's errors said in one line) is
``rawws.store.opening``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rawws.errors import SchemaTooNew, UsernameTaken
from rawws.store.api_keys import ApiKeysSql
from rawws.store.base import (
    INVALID,
    REUSED,
    ROTATED,
    NewMessage,
    Rotation,
    StoredMessage,
    User,
)
from rawws.store.edits import EditsSql, current_entries, history_entries, stored_entry
from rawws.store.erasure import ErasureSql
from rawws.store.hooks import HookDeliveriesSql
from rawws.store.names import username_key, username_skeleton
from rawws.store.publishes import PublishesSql
from rawws.store.reads import ReadsSql
from rawws.store.retention import RetentionSql
from rawws.store.room_removal import RoomRemovalSql
from rawws.store.schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    lock_schema,
    messages,
    metadata,
    refresh_tokens,
    rooms,
    schema_version,
    spent_tickets,
    user_named,
    users,
)
from rawws.store.stops import AccountStops
from rawws.store.streams import StreamsSql

SQLITE_FILE = "rawws.db"


def sqlite_url(data_dir: str | Path) -> str:
    return f"sqlite+aiosqlite:///{Path(data_dir) / SQLITE_FILE}"


class SqlStore(
    RoomRemovalSql,  # and the chat's rooms, ``RoomsSql``, which it builds on
    AccountStops,
    ErasureSql,
    EditsSql,
    RetentionSql,
    ReadsSql,
    ApiKeysSql,
    PublishesSql,
    HookDeliveriesSql,
    StreamsSql,
):
    """A ``Store`` over any SQLAlchemy async URL (rooms and membership: ``rawws.store.rooms``;
    the account stops' queries: ``rawws.store.stops``; edits and deletions: ``rawws.store.edits``;
    retention: ``rawws.store.retention``; read markers: ``rawws.store.reads``; account
    erasure: ``rawws.store.erasure``; the server API's keys: ``rawws.store.api_keys``, its
    exactly-once publish: ``rawws.store.publishes``, its room calls: ``rawws.store.room_removal``;
    the hooks told after: ``rawws.store.hooks``; streamed messages: ``rawws.store.streams``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def initialize(self) -> None:
        """Create what is missing and bring the schema up to ``SCHEMA_VERSION``, under a database lock.

        Nodes (and ``--workers``) started together on one database would otherwise race between
        "does this table exist" and "create it": one of them failed with a duplicate key. The lock
        is held to the end of this transaction, so the others wait, then find the schema made.
        """
        username_skeleton(
            ""
        )  # loads the confusables table now, not in the first registration
        async with self.engine.begin() as conn:
            await lock_schema(conn)
            await conn.run_sync(metadata.create_all)
            version = (await conn.execute(sa.select(schema_version.c.version))).scalar()
            if version is None:
                await conn.execute(
                    schema_version.insert().values(version=SCHEMA_VERSION)
                )
                return
            if version > SCHEMA_VERSION:
                raise SchemaTooNew(
                    f"database schema {version} is newer than this rawws ({SCHEMA_VERSION})"
                )
            while version < SCHEMA_VERSION:
                await MIGRATIONS[version](conn)
                version += 1
            await conn.execute(schema_version.update().values(version=version))

    async def create_user(self, username: str, password_hash: str) -> User:
        created = datetime.now(UTC)
        try:
            async with self.engine.begin() as conn:
                result = await conn.execute(
                    users.insert()
                    .values(
                        username=username,
                        username_key=username_key(username),
                        username_skeleton=username_skeleton(username),
                        password_hash=password_hash,
                        created_at=created,
                    )
                    .returning(users.c.id)
                )
                user_id = result.scalar_one()
        except IntegrityError:
            raise UsernameTaken(username) from None
        return User(user_id, username, password_hash, created)

    async def get_user(self, username: str) -> User | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(user_named(username))).first()
        if row is None:
            return None
        created = (
            row.created_at
            if row.created_at.tzinfo
            else row.created_at.replace(tzinfo=UTC)
        )
        return User(
            row.id,
            row.username,
            row.password_hash,
            created,
            disabled=row.disabled,
            admin=row.admin,
            not_before=row.not_before,
        )

    async def update_password_hash(self, user_id: int, password_hash: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                users.update()
                .where(users.c.id == user_id)
                .values(password_hash=password_hash)
            )

    async def append_messages(self, batch: list[NewMessage]) -> list[StoredMessage]:
        """Store a batch in one transaction (group commit), numbering each room's messages in order."""
        by_room: dict[str, list[NewMessage]] = {}
        for item in batch:
            by_room.setdefault(item.room, []).append(item)
        stored: dict[int, StoredMessage] = {}
        positions = {id(item): index for index, item in enumerate(batch)}
        async with self.engine.begin() as conn:
            for room, items in by_room.items():
                await conn.execute(self._insert_room_if_missing(room))
                numbered = await self._number_in_room(conn, room, items)
                for item, message in zip(items, numbered, strict=True):
                    stored[positions[id(item)]] = message
        return [stored[index] for index in range(len(batch))]

    async def _number_in_room(
        self, conn: AsyncConnection, room: str, items: list[NewMessage]
    ) -> list[StoredMessage]:
        """Give ``items`` the room's next ids and insert them, in ``conn``'s transaction.

        The ids come from one ``UPDATE rooms … RETURNING`` (which locks the room's row until
        the transaction ends), so they stay ordered with several nodes on one database. The
        room's row must exist (``[]`` and nothing stored when it does not).
        """
        last = (
            await conn.execute(
                rooms.update()
                .where(rooms.c.name == room)
                .values(last_id=rooms.c.last_id + len(items))
                .returning(rooms.c.last_id)
            )
        ).scalar_one_or_none()
        if last is None:
            return []
        first = int(last) - len(items) + 1
        numbered = [
            StoredMessage(
                room,
                first + offset,
                item.user,
                item.text,
                item.ts,
                app=item.app,
                stream=item.stream,
            )
            for offset, item in enumerate(items)
        ]
        await conn.execute(
            messages.insert(),
            [
                {
                    "room": room,
                    "id": message.id,
                    "user": message.user,
                    "text": message.text,
                    "ts": message.ts,
                    "app": message.app,
                    "stream": message.stream,
                }
                for message in numbered
            ],
        )
        return numbered

    async def messages_after(
        self, room: str, after: int, limit: int
    ) -> list[StoredMessage]:
        """Up to ``limit`` entries with id > ``after``, oldest first (replay on reconnect, a gap's
        repair): every event, each message and edit in its current state (``stored_entry``)."""
        query = (
            current_entries()
            .where(messages.c.room == room, messages.c.id > after)
            .order_by(messages.c.id)
            .limit(limit)
        )
        return await self._messages(query)

    async def messages_before(
        self, room: str, before: int | None, limit: int
    ) -> list[StoredMessage]:
        """The ``limit`` entries just before id ``before`` (or the newest), oldest first: messages
        in their current state and membership events, never an edit or deletion event."""
        query = history_entries().where(messages.c.room == room)
        if before is not None:
            query = query.where(messages.c.id < before)
        rows = await self._messages(query.order_by(messages.c.id.desc()).limit(limit))
        return rows[::-1]

    async def ping(self) -> None:
        """One round trip to the database (readiness)."""
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def last_message_id(self, room: str) -> int:
        async with self.engine.connect() as conn:
            value = (
                await conn.execute(
                    sa.select(rooms.c.last_id).where(rooms.c.name == room)
                )
            ).scalar()
        return int(value or 0)

    async def _messages(self, query: sa.Select[Any]) -> list[StoredMessage]:
        async with self.engine.connect() as conn:
            result = await conn.execute(query)
            return [stored_entry(row) for row in result]

    # -- refresh tokens and tickets --------------------------------------------

    async def add_refresh_token(
        self,
        token_hash: str,
        family: str,
        user_id: int,
        username: str,
        expires_at: float,
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                refresh_tokens.insert().values(
                    token_hash=token_hash,
                    family=family,
                    user_id=user_id,
                    username=username,
                    expires_at=expires_at,
                    used_at=None,
                    revoked=False,
                )
            )

    async def rotate_refresh_token(
        self,
        token_hash: str,
        successor_hash: str,
        successor_expires_at: float,
        now: float,
    ) -> Rotation:
        """Spend a refresh token and store its successor, in one transaction.

        The spend is one conditional UPDATE, so of two uses of one token only one
        can win; the loser (or any later replay) finds it used and revokes the family.
        """
        table = refresh_tokens
        async with self.engine.begin() as conn:
            if not await self._lock_owner_of(conn, token_hash):
                return Rotation(INVALID)
            spent = (
                await conn.execute(
                    table.update()
                    .where(
                        table.c.token_hash == token_hash,
                        table.c.used_at.is_(None),
                        table.c.revoked.is_(False),
                        table.c.expires_at > now,
                    )
                    .values(used_at=now)
                    .returning(table.c.family, table.c.user_id, table.c.username)
                )
            ).first()
            if spent is not None:
                await conn.execute(
                    table.insert().values(
                        token_hash=successor_hash,
                        family=spent.family,
                        user_id=spent.user_id,
                        username=spent.username,
                        expires_at=successor_expires_at,
                        used_at=None,
                        revoked=False,
                    )
                )
                return Rotation(ROTATED, spent.user_id, spent.username, spent.family)
            known = (
                await conn.execute(
                    sa.select(table).where(table.c.token_hash == token_hash)
                )
            ).first()
            if known is None or known.used_at is None:
                return Rotation(
                    INVALID
                )  # unknown, expired, or revoked before it was ever used
            await conn.execute(
                table.update()
                .where(table.c.family == known.family)
                .values(revoked=True)
            )
            return Rotation(REUSED, known.user_id, known.username, known.family)

    async def revoke_refresh_family(self, token_hash: str) -> bool:
        """Revoke the family of a token (logout); ``False`` when the token is unknown."""
        table = refresh_tokens
        async with self.engine.begin() as conn:
            if not await self._lock_owner_of(conn, token_hash):
                return False
            family = (
                await conn.execute(
                    sa.select(table.c.family).where(table.c.token_hash == token_hash)
                )
            ).scalar()
            if family is None:
                return False
            await conn.execute(
                table.update().where(table.c.family == family).values(revoked=True)
            )
            return True

    async def revoke_user_families(self, user_id: int, keep_family: str | None) -> int:
        """Revoke every refresh token of a user but those of ``keep_family``; how many were live."""
        table = refresh_tokens
        condition = sa.and_(table.c.user_id == user_id, table.c.revoked.is_(False))
        if keep_family is not None:
            condition = sa.and_(condition, table.c.family != keep_family)
        async with self.engine.begin() as conn:
            await self._lock_user(conn, user_id)
            result = await conn.execute(
                table.update().where(condition).values(revoked=True)
            )
            return int(result.rowcount or 0)

    async def _lock_owner_of(self, conn: AsyncConnection, token_hash: str) -> bool:
        """Lock the user row of a token's owner (``False``: no such token); see ``_lock_user``."""
        if self.dialect != "postgresql":
            return True  # SQLite: the first write takes the database's one write lock
        user_id = (
            await conn.execute(
                sa.select(refresh_tokens.c.user_id).where(
                    refresh_tokens.c.token_hash == token_hash
                )
            )
        ).scalar()
        if user_id is None:
            return False
        await self._lock_user(conn, int(user_id))
        return True

    async def _lock_user(self, conn: AsyncConnection, user_id: int) -> None:
        """Order every rotation and revocation of one user's refresh tokens (PostgreSQL).

        Under READ COMMITTED a revoking UPDATE sees only the rows committed when it
        started: a rotation that inserted its successor meanwhile left it unrevoked.
        Both now take the user's row lock (``SELECT … FOR UPDATE``) first, so one
        waits for the other to commit, and its next statement sees what that wrote.
        SQLite serialises writers anyway (a rotation's first statement is its write).
        """
        if self.dialect == "postgresql":
            await conn.execute(
                sa.select(users.c.id).where(users.c.id == user_id).with_for_update()
            )

    async def spend_ticket(self, token_id: str, expires_at: float, now: float) -> bool:
        """``True`` the first time a ticket id is spent; expired entries are swept on the way."""
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    spent_tickets.delete().where(spent_tickets.c.expires_at < now)
                )
                await conn.execute(
                    spent_tickets.insert().values(
                        token_id=token_id, expires_at=expires_at
                    )
                )
        except IntegrityError:
            return False
        return True

    async def schema_version(self) -> int:
        async with self.engine.connect() as conn:
            return int(
                (await conn.execute(sa.select(schema_version.c.version))).scalar_one()
            )

    async def close(self) -> None:
        await self.engine.dispose()
