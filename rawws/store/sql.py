"""The SQL store: SQLAlchemy 2 Core on asyncio, SQLite (aiosqlite) or PostgreSQL (asyncpg).

The schema is created on start and its version recorded in ``schema_version``;
a database written by a newer rawws is refused rather than misread. Later
versions add their tables through ``MIGRATIONS``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from rawws.errors import SchemaTooNew, UsernameTaken
from rawws.store.base import NewMessage, StoredMessage, User

SCHEMA_VERSION = 2  # 1: users; 2: rooms and messages
SQLITE_FILE = "rawws.db"

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(32), nullable=False),
    # Names are unique regardless of case: "Ada" and "ada" are one user.
    sa.Column("username_key", sa.String(32), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

rooms = sa.Table(
    "rooms",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    # The last message id given out in this room: ids come from one atomic
    # UPDATE … RETURNING, so they stay ordered with several nodes on one database.
    sa.Column("last_id", sa.BigInteger, nullable=False),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("room", sa.String(32), primary_key=True),
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("user", sa.String(64), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
)

Migration = Callable[[AsyncConnection], Awaitable[None]]


async def _add_messages(conn: AsyncConnection) -> None:
    await conn.run_sync(lambda sync: metadata.create_all(sync, tables=[rooms, messages]))


#: ``MIGRATIONS[n]`` upgrades a database from version ``n`` to ``n + 1``.
MIGRATIONS: dict[int, Migration] = {1: _add_messages}




def sqlite_url(data_dir: str | Path) -> str:
    return f"sqlite+aiosqlite:///{Path(data_dir) / SQLITE_FILE}"


def username_key(username: str) -> str:
    return username.lower()


class SqlStore:
    """A ``Store`` over any SQLAlchemy async URL."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def initialize(self) -> None:
        """Create what is missing and bring the schema up to ``SCHEMA_VERSION``."""
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            version = (await conn.execute(sa.select(schema_version.c.version))).scalar()
            if version is None:
                await conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
                return
            if version > SCHEMA_VERSION:
                raise SchemaTooNew(f"database schema {version} is newer than this rawws ({SCHEMA_VERSION})")
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
            row = (
                await conn.execute(sa.select(users).where(users.c.username_key == username_key(username)))
            ).first()
        if row is None:
            return None
        created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
        return User(row.id, row.username, row.password_hash, created)

    async def update_password_hash(self, user_id: int, password_hash: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(users.update().where(users.c.id == user_id).values(password_hash=password_hash))

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
                last = (
                    await conn.execute(
                        rooms.update()
                        .where(rooms.c.name == room)
                        .values(last_id=rooms.c.last_id + len(items))
                        .returning(rooms.c.last_id)
                    )
                ).scalar_one()
                first = last - len(items) + 1
                rows = []
                for offset, item in enumerate(items):
                    message = StoredMessage(room, first + offset, item.user, item.text, item.ts)
                    stored[positions[id(item)]] = message
                    rows.append({"room": room, "id": message.id, "user": item.user, "text": item.text, "ts": item.ts})
                await conn.execute(messages.insert(), rows)
        return [stored[index] for index in range(len(batch))]

    def _insert_room_if_missing(self, room: str) -> sa.Executable:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(rooms).values(name=room, last_id=0).on_conflict_do_nothing(index_elements=["name"])
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(rooms).values(name=room, last_id=0).on_conflict_do_nothing(index_elements=["name"])

    async def messages_after(self, room: str, after: int, limit: int) -> list[StoredMessage]:
        """Up to ``limit`` messages with id > ``after``, oldest first (replay on reconnect)."""
        query = (
            sa.select(messages)
            .where(messages.c.room == room, messages.c.id > after)
            .order_by(messages.c.id)
            .limit(limit)
        )
        return await self._messages(query)

    async def messages_before(self, room: str, before: int | None, limit: int) -> list[StoredMessage]:
        """The ``limit`` messages just before id ``before`` (or the newest), oldest first."""
        query = sa.select(messages).where(messages.c.room == room)
        if before is not None:
            query = query.where(messages.c.id < before)
        rows = await self._messages(query.order_by(messages.c.id.desc()).limit(limit))
        return rows[::-1]

    async def last_message_id(self, room: str) -> int:
        async with self.engine.connect() as conn:
            value = (await conn.execute(sa.select(rooms.c.last_id).where(rooms.c.name == room))).scalar()
        return int(value or 0)

    async def _messages(self, query: sa.Select[Any]) -> list[StoredMessage]:
        async with self.engine.connect() as conn:
            result = await conn.execute(query)
            return [StoredMessage(row.room, row.id, row.user, row.text, row.ts) for row in result]

    async def schema_version(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(sa.select(schema_version.c.version))).scalar_one())

    async def close(self) -> None:
        await self.engine.dispose()


def _tune_sqlite(dbapi_connection: Any, _record: object) -> None:
    """WAL lets readers go on while one writer commits; wait rather than fail on a busy file."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


async def open_store(url: str) -> SqlStore:
    """Connect, create or upgrade the schema, and hand back a ready store.

    ``hide_parameters``: SQL parameters (password hashes among them) stay out of
    SQLAlchemy's log lines and out of its exception text, which rawws logs.
    """
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
    else:
        engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True, hide_parameters=True)
    store = SqlStore(engine)
    try:
        await store.initialize()
    except BaseException:
        await engine.dispose()
        raise
    return store
