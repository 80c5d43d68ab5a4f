"""The SQL store: SQLAlchemy 2 Core on asyncio, SQLite (aiosqlite) or PostgreSQL (asyncpg).

The schema is created on start and its version recorded in ``schema_version``;
a database written by a newer rawws is refused rather than misread. Later
versions add their tables through ``MIGRATIONS``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from rawws.errors import RawwsError
from rawws.store.base import User, UsernameTaken

SCHEMA_VERSION = 1
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

Migration = Callable[[AsyncConnection], Awaitable[None]]
#: ``MIGRATIONS[n]`` upgrades a database from version ``n`` to ``n + 1``.
MIGRATIONS: dict[int, Migration] = {}


class SchemaTooNew(RawwsError):
    pass


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

    async def schema_version(self) -> int:
        async with self.engine.connect() as conn:
            return (await conn.execute(sa.select(schema_version.c.version))).scalar_one()

    async def close(self) -> None:
        await self.engine.dispose()


def _tune_sqlite(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API objects
    """WAL lets readers go on while one writer commits; wait rather than fail on a busy file."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


async def open_store(url: str) -> SqlStore:
    """Connect, create or upgrade the schema, and hand back a ready store."""
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
    else:
        engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
    store = SqlStore(engine)
    try:
        await store.initialize()
    except BaseException:
        await engine.dispose()
        raise
    return store
