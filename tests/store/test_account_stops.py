"""Account stops in the store (schema 5), on a real SQLite file and a real PostgreSQL:
a version-4 database migrates, disable revokes every refresh family, stamps are polled."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from rawws.store import SqlStore, open_store
from rawws.store.base import Stamp
from rawws.store.schema import metadata, schema_version
from rawws.store.sql import SCHEMA_VERSION

HASH = "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"


async def _make_version_4(url: str) -> None:
    """What the release before account stops wrote: every table, users without the three columns."""
    if url.startswith("sqlite"):
        Path(sa.engine.make_url(url).database or "").parent.mkdir(parents=True)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(sa.text("DROP INDEX users_not_before"))
            for column in ("disabled", "admin", "not_before"):
                await conn.execute(sa.text(f"ALTER TABLE users DROP COLUMN {column}"))
            await conn.execute(schema_version.insert().values(version=4))
            await conn.execute(
                sa.text(
                    "INSERT INTO users (username, username_key, username_skeleton,"
                    " password_hash, created_at) VALUES ('Ada', 'ada', 'ada', :h, :c)"
                ),
                {"h": HASH, "c": datetime.now(UTC)},
            )
    finally:
        await engine.dispose()


async def test_a_version_4_database_migrates_to_account_stops(store_url: str) -> None:
    await _make_version_4(store_url)
    store = await open_store(store_url)
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        ada = await store.get_user("ada")
        assert ada is not None
        assert (ada.disabled, ada.admin, ada.not_before) == (False, False, 0.0)
        assert await store.set_disabled("ADA", True, 123.5)
        ada = await store.get_user("ada")
        assert ada is not None and ada.disabled and ada.not_before == 123.5
        made = await store.create_user("Bob", HASH)  # the defaults hold for new rows
        bob = await store.get_user("bob")
        assert bob is not None and made.id == bob.id
        assert (bob.disabled, bob.admin, bob.not_before) == (False, False, 0.0)
    finally:
        await store.close()


async def test_disable_revokes_every_refresh_family_and_stamps(store: SqlStore) -> None:
    user = await store.create_user("Ada", HASH)
    later = time.time() + 3600
    await store.add_refresh_token("h1", "f1", user.id, "Ada", later)
    await store.add_refresh_token("h2", "f2", user.id, "Ada", later)
    now = time.time()
    assert await store.set_disabled("ada", True, now)
    for presented in ("h1", "h2"):
        rotation = await store.rotate_refresh_token(
            presented, presented + "x", later, now
        )
        assert rotation.outcome == "invalid"
    assert await store.stamps_since(now - 1) == [Stamp("ada", now, True)]
    assert await store.stamps_since(now) == []
    assert await store.set_disabled("ada", False, now + 5)
    state = await store.account_state("ada")
    assert state is not None and not state.disabled and state.not_before == now + 5
    assert not await store.set_disabled("nobody", True, now)


async def test_a_stamp_never_moves_back_and_admin_is_a_flag(store: SqlStore) -> None:
    user = await store.create_user("Ada", HASH)
    await store.stamp_not_before(user.id, 200.0)
    await store.stamp_not_before(user.id, 100.0)
    assert [s.not_before for s in await store.stamps_since(0)] == [200.0]
    assert await store.set_admin("ADA", True)
    assert [a.username for a in await store.flagged_accounts()] == ["Ada"]
    assert await store.set_admin("ada", False)
    assert await store.flagged_accounts() == []
    assert not await store.set_admin("nobody", True)


async def test_logout_revokes_the_family_and_stamps_once(store: SqlStore) -> None:
    user = await store.create_user("Ada", HASH)
    later = time.time() + 3600
    await store.add_refresh_token("h1", "f1", user.id, "Ada", later)
    await store.add_refresh_token("h2", "f2", user.id, "Ada", later)
    stamp = await store.revoke_family_and_stamp("h1", 50.0)
    assert stamp == Stamp("ada", 50.0, False)
    assert await store.revoke_family_and_stamp("h1", 60.0) is None  # revoked already
    assert await store.revoke_family_and_stamp("nope", 60.0) is None
    rotation = await store.rotate_refresh_token("h2", "h3", later, time.time())
    assert rotation.outcome == "rotated"  # another login of the user keeps its family
    assert await store.stamp_not_before(user.id, 40.0) == Stamp("ada", 50.0, False)


async def test_disable_and_enable_always_move_the_stamp_forward(
    store: SqlStore,
) -> None:
    """A poll reads only stamps that moved: an enable by a clock behind the last stamp still moves it."""
    await store.create_user("Ada", HASH)
    assert await store.set_disabled("ada", True, 1000.0)
    assert await store.set_disabled("ada", False, 999.0)  # a clock a second behind
    assert await store.stamps_since(1000.0) == [Stamp("ada", 1000.001, False)]
