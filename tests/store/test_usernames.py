"""User names: one documented normalisation for "same user" (NFKC + case folding) and a
look-alike check (Unicode's confusables data) at registration, on SQLite and PostgreSQL.

Found from outside: ``aIice`` and ``a1ice`` registered freely beside ``alice``.
"""

from __future__ import annotations

import string
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from rawws.errors import UsernameTaken
from rawws.store import SqlStore, open_store
from rawws.store.names import username_key, username_skeleton
from rawws.store.sql import SCHEMA_VERSION, metadata, schema_version
from tests.support.helpers import register

HASH = "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
NAME_CHARS = string.ascii_letters + string.digits + "_.-"
names = st.text(NAME_CHARS, min_size=3, max_size=32)


# -- the normalisations (properties) ------------------------------------------------


@given(st.text(max_size=40))
def test_the_key_is_idempotent(name: str) -> None:
    assert username_key(username_key(name)) == username_key(name)


@given(names)
def test_for_the_names_one_may_register_the_key_is_lower_case(name: str) -> None:
    """ASCII names: NFKC + case folding equals ``lower()``, so stored keys stay what they were."""
    assert username_key(name) == name.lower()


@given(names)
def test_the_skeleton_is_idempotent(name: str) -> None:
    skeleton = username_skeleton(name)
    assert username_skeleton(skeleton) == skeleton


@given(names, st.data())
def test_swapping_look_alikes_keeps_the_skeleton(
    name: str, data: st.DataObject
) -> None:
    swaps = {"l": "1", "1": "I", "I": "l", "O": "0", "0": "O", "m": "rn"}
    mutated = "".join(
        data.draw(st.sampled_from([c, swaps[c]])) if c in swaps else c for c in name
    )
    assert username_skeleton(mutated) == username_skeleton(name)


def test_the_documented_examples() -> None:
    assert username_key("\u212aate") == "kate"  # the Kelvin sign is a K, by NFKC
    assert username_key("ＡＤＡ") == "ada"  # fullwidth
    assert username_key("Straße") == "strasse"  # case folding, not lower()
    for look_alike in ("aIice", "a1ice", "AIice", "a1icE"):
        assert username_skeleton(look_alike) == username_skeleton("alice")
    assert username_skeleton("b0b") == username_skeleton("bob")
    assert username_skeleton("rnodern") == username_skeleton("modern")
    assert username_skeleton("alicia") != username_skeleton("alice")


# -- the store ------------------------------------------------------------------------


async def test_look_alikes_of_a_registered_name_are_refused(store: SqlStore) -> None:
    await store.create_user("alice", HASH)
    await store.create_user("bob", HASH)
    for look_alike in ("aIice", "a1ice", "AIice", "b0b", "B0B"):
        with pytest.raises(UsernameTaken):
            await store.create_user(look_alike, HASH)
    assert (await store.create_user("alicia", HASH)).username == "alicia"


async def test_a_login_is_looked_up_by_the_documented_normalisation(
    store: SqlStore,
) -> None:
    kate = await store.create_user("kate", HASH)
    found = await store.get_user("\u212aate")  # Kelvin sign: NFKC makes it K
    assert found is not None and found.id == kate.id
    assert await store.get_user("ｋａｔｅ") is not None  # fullwidth, likewise
    assert await store.get_user("kat\u0435") is None  # Cyrillic e: another name


async def test_a_version_3_database_gets_skeletons_and_keeps_its_look_alikes(
    store_url: str,
) -> None:
    """Users registered before the check keep their accounts; the first of look-alikes keeps the skeleton."""
    from sqlalchemy.ext.asyncio import create_async_engine

    if store_url.startswith("sqlite"):
        Path(sa.engine.make_url(store_url).database).parent.mkdir(parents=True)  # type: ignore[arg-type]
    old = sa.MetaData()
    old_users = sa.Table(
        "users",
        old,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(32), nullable=False),
        sa.Column("username_key", sa.String(32), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    engine = create_async_engine(store_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(old.create_all)
            await conn.run_sync(
                lambda sync: metadata.create_all(
                    sync,
                    tables=[t for t in metadata.sorted_tables if t.name != "users"],
                )
            )
            await conn.execute(schema_version.insert().values(version=3))
            for name in ("alice", "aIice", "Bob"):
                await conn.execute(
                    old_users.insert().values(
                        username=name,
                        username_key=name.lower(),
                        password_hash=HASH,
                        created_at=datetime.now(UTC),
                    )
                )
    finally:
        await engine.dispose()

    store = await open_store(store_url)
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        for name in ("alice", "aIice", "bob"):
            assert await store.get_user(name) is not None
        for look_alike in ("a1ice", "B0B", "BOB"):
            with pytest.raises(UsernameTaken):
                await store.create_user(look_alike, HASH)
        assert (await store.create_user("carol", HASH)).username == "carol"
    finally:
        await store.close()
    reopened = await open_store(
        store_url
    )  # migrated once: a second open changes nothing
    try:
        assert await reopened.schema_version() == SCHEMA_VERSION
    finally:
        await reopened.close()


# -- over HTTP ---------------------------------------------------------------------------


async def test_registering_a_look_alike_is_409(start_server) -> None:
    server = await start_server()
    assert (await register(server.port, "alice")).status == 201
    reply = await register(server.port, "aIice")
    assert reply.status == 409
    assert "too like" in reply.json["error"]["message"]
