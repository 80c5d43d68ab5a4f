"""The store, one suite run twice: against SQLite (a real file) and a real PostgreSQL.

Every test gets an empty database of its own (a fresh file or ``CREATE DATABASE``).
"""

from __future__ import annotations

import asyncio
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from rawws.errors import SchemaTooNew, UsernameTaken
from rawws.store import SqlStore, User, open_store, sqlite_url
from rawws.store.sql import SCHEMA_VERSION

HASH = "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"  # shape only: the store never checks it
TIMEOUT_S = 30.0


async def table_names(store: SqlStore) -> set[str]:
    async with store.engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names()))


# -- schema --------------------------------------------------------------------


async def test_schema_is_created_on_start_and_its_version_recorded(
    store_url: str,
) -> None:
    store = await open_store(store_url)
    try:
        assert {"users", "schema_version"} <= await table_names(store)
        assert await store.schema_version() == SCHEMA_VERSION
        async with store.engine.connect() as conn:
            rows = (
                await conn.execute(sa.text("SELECT version FROM schema_version"))
            ).all()
        assert rows == [
            (SCHEMA_VERSION,)
        ]  # exactly one row, however often the store opens
    finally:
        await store.close()


async def test_stores_opened_at_once_on_a_fresh_database_all_open_with_one_schema(
    store_url: str,
) -> None:
    """Nodes started together race between "does this table exist" and "create it" unless the schema is
    made under a database lock (before it, on PostgreSQL: "duplicate key … pg_type_typname_nsp_index")."""
    from rawws.store.sql import metadata

    for _round in range(3):
        stores = await asyncio.gather(
            *(open_store(store_url) for _ in range(5)), return_exceptions=True
        )
        opened = [store for store in stores if isinstance(store, SqlStore)]
        try:
            assert len(opened) == 5, [
                repr(store) for store in stores if not isinstance(store, SqlStore)
            ]
            async with opened[0].engine.begin() as conn:
                rows = (
                    await conn.execute(sa.text("SELECT version FROM schema_version"))
                ).all()
                assert rows == [(SCHEMA_VERSION,)]
                await conn.run_sync(
                    metadata.drop_all
                )  # a fresh database again for the next round
        finally:
            for store in opened:
                await store.close()


async def test_sqlite_files_opened_at_once_when_new_all_open(tmp_path: Path) -> None:
    """A new SQLite file is switched to WAL by whichever store gets there first; SQLite answers the
    others "database is locked" at once, unheld by the busy timeout (before: one start in ten failed).
    """
    for attempt in range(30):
        url = sqlite_url(tmp_path / str(attempt))
        stores = await asyncio.gather(
            *(open_store(url) for _ in range(5)), return_exceptions=True
        )
        opened = [store for store in stores if isinstance(store, SqlStore)]
        for store in opened:
            await store.close()
        assert len(opened) == 5, [
            repr(store) for store in stores if not isinstance(store, SqlStore)
        ]


async def test_sqlite_database_is_a_real_file(tmp_path: Path) -> None:
    store = await open_store(sqlite_url(tmp_path / "nested" / "dir"))
    try:
        assert store.dialect == "sqlite"
        assert (tmp_path / "nested" / "dir" / "rawws.db").is_file()
    finally:
        await store.close()


async def test_reopening_keeps_users_and_the_single_version_row(store_url: str) -> None:
    first = await open_store(store_url)
    try:
        created = await first.create_user("Ada", HASH)
    finally:
        await first.close()

    second = await open_store(store_url)
    try:
        assert await second.get_user("ada") == created
        assert await second.schema_version() == SCHEMA_VERSION
        async with second.engine.connect() as conn:
            assert (
                await conn.execute(sa.text("SELECT count(*) FROM schema_version"))
            ).scalar_one() == 1
    finally:
        await second.close()


async def test_database_from_a_newer_rawws_is_refused(store_url: str) -> None:
    store = await open_store(store_url)
    try:
        await store.create_user("ada", HASH)
        async with store.engine.begin() as conn:
            await conn.execute(
                sa.text("UPDATE schema_version SET version = :v"),
                {"v": SCHEMA_VERSION + 1},
            )
    finally:
        await store.close()

    with pytest.raises(SchemaTooNew):
        await open_store(store_url)

    # Refusing did not touch the data or the recorded version.
    check = SqlStore(_engine_for(store_url))
    try:
        assert await check.schema_version() == SCHEMA_VERSION + 1
        assert (await check.get_user("ada")) is not None
    finally:
        await check.close()


async def test_a_version_1_database_is_upgraded_and_keeps_its_users(
    store_url: str,
) -> None:
    """What the first release wrote (users and the version table only) is migrated forward, data intact."""
    from rawws.store.sql import schema_version, users

    if store_url.startswith("sqlite"):
        Path(sa.engine.make_url(store_url).database).parent.mkdir(parents=True)  # type: ignore[arg-type]
    engine = _engine_for(store_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(
                lambda sync: users.metadata.create_all(
                    sync, tables=[users, schema_version]
                )
            )
            await conn.execute(schema_version.insert().values(version=1))
            await conn.execute(
                users.insert().values(
                    username="Ada",
                    username_key="ada",
                    password_hash=HASH,
                    created_at=datetime.now(UTC),
                )
            )
    finally:
        await engine.dispose()

    store = await open_store(store_url)
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        assert (await store.get_user("ada")).username == "Ada"  # type: ignore[union-attr]
        assert {"users", "schema_version"} <= await table_names(store)
        with pytest.raises(UsernameTaken):
            await store.create_user("ADA", HASH)
    finally:
        await store.close()


def _engine_for(url: str):
    from sqlalchemy.ext.asyncio import create_async_engine

    return create_async_engine(url)


# -- users ---------------------------------------------------------------------


async def test_create_and_get_user(store: SqlStore) -> None:
    before = datetime.now(UTC)
    created = await store.create_user("Ada.Lovelace", HASH)
    assert isinstance(created, User)
    assert created.username == "Ada.Lovelace"
    assert created.password_hash == HASH
    assert created.id > 0
    assert created.created_at.tzinfo is not None
    assert (
        before - timedelta(seconds=60)
        <= created.created_at
        <= datetime.now(UTC) + timedelta(seconds=60)
    )

    fetched = await store.get_user("Ada.Lovelace")
    assert (
        fetched == created
    )  # same id, name as typed, hash, and the same instant, timezone-aware
    assert await store.get_user("nobody") is None


async def test_lookup_ignores_case_but_keeps_the_name_as_registered(
    store: SqlStore,
) -> None:
    await store.create_user("Ada", HASH)
    for spelling in ("ada", "ADA", "aDa"):
        user = await store.get_user(spelling)
        assert user is not None and user.username == "Ada"


async def test_names_are_unique_regardless_of_case(store: SqlStore) -> None:
    await store.create_user("Ada", HASH)
    with pytest.raises(UsernameTaken):
        await store.create_user("ada", HASH)
    with pytest.raises(UsernameTaken):
        await store.create_user("Ada", HASH)
    other = await store.create_user("Grace", HASH)
    assert (await store.get_user("grace")) == other
    assert (await store.get_user("ada")).username == "Ada"  # type: ignore[union-attr]


async def test_ids_are_distinct(store: SqlStore) -> None:
    users = [await store.create_user(f"user{n}", HASH) for n in range(5)]
    assert len({user.id for user in users}) == 5


async def test_concurrent_registrations_of_one_name_exactly_one_wins(
    store: SqlStore,
) -> None:
    spellings = ["linus", "Linus", "LINUS", "liNus", "linuS", "LiNuS", "lInUs", "LINus"]
    results = await asyncio.wait_for(
        asyncio.gather(
            *(store.create_user(name, HASH) for name in spellings),
            return_exceptions=True,
        ),
        TIMEOUT_S,
    )
    winners = [result for result in results if isinstance(result, User)]
    losers = [result for result in results if isinstance(result, UsernameTaken)]
    assert len(winners) == 1, results
    assert len(losers) == len(spellings) - 1, (
        results
    )  # nothing else: no "database is locked", no deadlock
    assert await store.get_user("linus") == winners[0]


async def test_concurrent_registrations_of_different_names_all_succeed(
    store: SqlStore,
) -> None:
    names = [f"user{n}" for n in range(12)]
    results = await asyncio.wait_for(
        asyncio.gather(
            *(store.create_user(name, HASH) for name in names), return_exceptions=True
        ),
        TIMEOUT_S,
    )
    assert all(isinstance(result, User) for result in results), results
    for name in names:
        assert await store.get_user(name) is not None


async def test_update_password_hash(store: SqlStore) -> None:
    ada = await store.create_user("ada", HASH)
    grace = await store.create_user("grace", HASH)
    await store.update_password_hash(ada.id, "$argon2id$new")
    updated = await store.get_user("ada")
    assert updated is not None
    assert updated.password_hash == "$argon2id$new"
    assert (updated.id, updated.username, updated.created_at) == (
        ada.id,
        ada.username,
        ada.created_at,
    )
    assert await store.get_user("grace") == grace  # only that user changed


async def test_longest_allowed_name_fits(store: SqlStore) -> None:
    name = "A" + "b" * 31  # passwords.USERNAME allows 32 characters
    created = await store.create_user(name, "$argon2id$" + "x" * 200)
    assert await store.get_user(name.lower()) == created


async def test_database_errors_carry_no_sql_parameters(store: SqlStore) -> None:
    """A failure's text is logged (``handler failed``): it must not hold the password hash it was writing."""
    secret_hash = "$argon2id$v=19$m=65536,t=3,p=4$c2VjcmV0c2FsdA$do-not-log-me"
    await store.create_user("ada", HASH)
    async with store.engine.begin() as conn:
        await conn.execute(sa.text("DROP TABLE users"))
    failures = []
    for attempt in (
        store.create_user("grace", secret_hash),
        store.update_password_hash(1, secret_hash),
    ):
        with pytest.raises(Exception) as failed:
            await attempt
        assert not isinstance(failed.value, UsernameTaken)
        failures.append(failed.value)
    for failure in failures:
        text = "".join(traceback.format_exception(failure))
        assert "do-not-log-me" not in text
        assert "grace" not in text  # no parameter at all
