"""Account erasure in the store (``rawws.store.erasure``), on SQLite and PostgreSQL: the
redaction stores exactly the rows a deletion by ``change_message`` stores, one event per
message in the room's sequence; tokens and memberships go; the row stays (the name taken)
until ``forget_erased``; a version 11 database gains ``erased_at``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from rawws.store import NewMessage, SqlStore, open_store, sqlite_url
from rawws.store.erasure import UNUSABLE_PASSWORD_HASH
from rawws.store.schema import SCHEMA_VERSION, messages, schema_version, users
from rawws.store.stops import STEP_S

HASH = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    url: str = request.getfixturevalue("postgres_url")
    return url


async def rows(store: SqlStore, room: str) -> list[tuple[object, ...]]:
    """Every stored column of ``room``'s entries but the room, in id order."""
    query = sa.select(messages).where(messages.c.room == room).order_by(messages.c.id)
    async with store.engine.connect() as conn:
        return [tuple(row)[1:] for row in await conn.execute(query)]


async def test_erasure_stores_what_deleting_each_message_would(store_url: str) -> None:
    """Two rooms alike, one deleted message by message, then the user erased: the erasure
    redacts only the other room, and both rooms hold the same rows."""
    store = await open_store(store_url)
    try:
        for name in ("ann", "bob"):
            await store.create_user(name, HASH)
        said = [("Ann", "one"), ("bob", "two"), ("ann", "three"), ("ANN", "four")]
        for room in ("a", "b"):
            await store.append_messages([NewMessage(room, u, t, 1.0) for u, t in said])
            await store.add_member(room, "ann", "member", "ann")
        await store.change_message("a", 4, "ann", None, 2.0)  # deleted already
        await store.change_message("b", 4, "ann", None, 2.0)
        await store.add_refresh_token("h" * 64, "f", 1, "ann", 1e12)
        for message_id in (
            1,
            3,
        ):  # "b" by hand first: the erasure finds nothing left there
            await store.change_message("b", message_id, "ann", None, 5.0)
        stamp, events = await store.erase_user("ann", "ann", 5.0)
        assert await rows(store, "a") == await rows(store, "b")
        assert [(e.id, e.about, e.kind, e.user) for e in events] == [
            (6, 1, "deleted", "ann"),
            (7, 3, "deleted", "ann"),
        ]
        assert await store.messages_after("a", 5, 10) == events
        assert stamp is not None and stamp.disabled and stamp.not_before == 5.0
        user = await store.get_user("ann")
        assert user is not None and user.disabled
        assert user.password_hash == UNUSABLE_PASSWORD_HASH
        assert await store.membership("a", "ann") is None
        assert await store.membership("a", "bob") is None  # bob never joined: unchanged
        async with store.engine.connect() as conn:
            tokens = (await conn.execute(sa.text("SELECT * FROM refresh_tokens"))).all()
            erased = (await conn.execute(sa.select(users.c.erased_at))).scalars().all()
        assert tokens == [] and sorted(erased, key=str) == [5.0, None]
        assert await store.erase_user("nobody", "ann", 6.0) == (None, [])
        assert await store.forget_erased(5.0) == 0
        assert await store.forget_erased(5.0 + STEP_S) == 1
        assert await store.get_user("ann") is None
        assert await store.get_user("bob") is not None
    finally:
        await store.close()


async def test_a_version_11_database_gets_erased_at(tmp_path: Path) -> None:
    store = await open_store(sqlite_url(tmp_path))
    await store.create_user("ann", HASH)
    async with store.engine.begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE users DROP COLUMN erased_at")
        await conn.execute(schema_version.update().values(version=11))
    await store.close()
    store = await open_store(sqlite_url(tmp_path))
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        stamp, _ = await store.erase_user("ann", "admin", 3.0)
        assert stamp is not None
        assert await store.forget_erased(4.0) == 1
    finally:
        await store.close()


async def test_the_names_next_holder_gets_the_direct_room_from_its_end(
    store_url: str,
) -> None:
    """After the quarantine the name's new holder may `dm` the erased user's partner again:
    the pair's room is theirs from its last id on, nothing said before readable."""
    from rawws.chat.doors import direct_name

    store = await open_store(store_url)
    try:
        for name in ("ann", "bob"):
            await store.create_user(name, HASH)
        room = direct_name("ann", "bob")
        await store.open_direct(room, "ann", "bob")
        await store.append_messages([NewMessage(room, "bob", "to the old ann", 1.0)])
        await store.erase_user("ann", "ann", 2.0)
        assert await store.forget_erased(3.0) == 1
        await store.create_user("Ann", HASH)
        again = await store.open_direct(room, "Ann", "bob")
        assert (again.kind, again.role, again.since_id) == ("direct", "member", 1)
        assert await store.membership(room, "bob") is not None
    finally:
        await store.close()
