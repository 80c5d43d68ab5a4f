"""Room kinds and stored membership (schema 5), on a real SQLite file and a real PostgreSQL.

The migration is tested on a database really laid out by the release before it: the
schema-4 tables below are a copy of that release's ``rawws/store/schema.py`` (the DDL,
not a file: a fixture file would cover SQLite only, and PostgreSQL is what clusters run).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from rawws.store import NewMessage, SqlStore, open_store
from rawws.store.base import Membership, RoomView
from rawws.store.sql import SCHEMA_VERSION

HASH = "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"


def schema_4() -> sa.MetaData:
    """The tables of schema 4, as the release before room kinds made them."""
    old = sa.MetaData()
    sa.Table("schema_version", old, sa.Column("version", sa.Integer, nullable=False))
    sa.Table(
        "users",
        old,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(32), nullable=False),
        sa.Column("username_key", sa.String(32), nullable=False, unique=True),
        sa.Column("username_skeleton", sa.String(64), nullable=True),
        sa.Index("users_username_skeleton", "username_skeleton", unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    sa.Table(
        "rooms",
        old,
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("last_id", sa.BigInteger, nullable=False),
    )
    sa.Table(
        "messages",
        old,
        sa.Column("room", sa.String(32), primary_key=True),
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("user", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
    )
    sa.Table(
        "refresh_tokens",
        old,
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("family", sa.String(64), nullable=False, index=True),
        sa.Column("user_id", sa.Integer, nullable=False, index=True),
        sa.Column("username", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("used_at", sa.Float, nullable=True),
        sa.Column("revoked", sa.Boolean, nullable=False),
    )
    sa.Table(
        "spent_tickets",
        old,
        sa.Column("token_id", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.Float, nullable=False, index=True),
    )
    return old


async def make_schema_4(url: str) -> None:
    if url.startswith("sqlite"):
        Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    old = schema_4()
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(old.create_all)
        t = old.tables
        await conn.execute(t["schema_version"].insert().values(version=4))
        await conn.execute(
            t["users"]
            .insert()
            .values(
                username="Ada",
                username_key="ada",
                username_skeleton="ada",
                password_hash=HASH,
                created_at=datetime.now(UTC),
            )
        )
        await conn.execute(t["rooms"].insert().values(name="lobby", last_id=2))
        await conn.execute(
            t["messages"].insert(),
            [
                {"room": "lobby", "id": 1, "user": "Ada", "text": "one", "ts": 1.0},
                {"room": "lobby", "id": 2, "user": "Ada", "text": "two", "ts": 2.0},
            ],
        )
    await engine.dispose()


async def test_a_schema_4_database_opens_with_its_rooms_public_and_nothing_lost(
    store_url: str,
) -> None:
    await make_schema_4(store_url)
    store = await open_store(store_url)
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        user = await store.get_user("ada")
        assert user is not None and user.username == "Ada"
        assert [
            (m.text, m.kind, m.target)
            for m in await store.messages_after("lobby", 0, 10)
        ] == [("one", "say", None), ("two", "say", None)]
        # Ada wrote in the lobby: a member of it from its start (version 8), so reads it all
        assert await store.visible_rooms("ada") == [
            RoomView("lobby", "public", "member", None, 0, 0)  # all hers: none unread
        ]
        assert await store.membership("lobby", "Ada") == Membership(
            "lobby", "public", "member", 0
        )
        stored = await store.append_messages([NewMessage("lobby", "Ada", "three", 3.0)])
        assert stored[0].id == 3
        assert await store.create_room("lobby", "public", "Ada") is None  # taken
        assert await store.create_room("team.abcdefgh", "private", "Ada") == Membership(
            "team.abcdefgh", "private", "owner", 0
        )
    finally:
        await store.close()
    reopened = await open_store(store_url)  # opening again migrates nothing twice
    try:
        assert await reopened.schema_version() == SCHEMA_VERSION
        assert await reopened.membership("team.abcdefgh", "ADA") is not None
    finally:
        await reopened.close()


async def test_create_makes_the_creator_owner_and_a_name_is_made_once(
    store: SqlStore,
) -> None:
    made = await store.create_room("den.aaaaaaaa", "private", "Ada")
    assert made == Membership("den.aaaaaaaa", "private", "owner", 0)
    assert await store.create_room("den.aaaaaaaa", "private", "Bob") is None
    assert await store.create_room("den.aaaaaaaa", "public", "Bob") is None
    assert await store.membership("den.aaaaaaaa", "ada") == made
    assert await store.membership("den.aaaaaaaa", "bob") is None
    assert await store.membership("nowhere", "ada") is None


async def test_a_member_starts_at_the_rooms_last_id(store: SqlStore) -> None:
    await store.create_room("den.aaaaaaaa", "private", "Ada")
    await store.append_messages(
        [NewMessage("den.aaaaaaaa", "Ada", f"m{i}", float(i)) for i in range(3)]
    )
    bob = await store.add_member("den.aaaaaaaa", "Bob", "member", "Ada")
    assert bob == Membership("den.aaaaaaaa", "private", "member", 3)
    await store.append_messages([NewMessage("den.aaaaaaaa", "Ada", "m3", 3.0)])
    # invited twice: the first membership stands
    assert await store.add_member("den.aaaaaaaa", "bob", "member", "Ada") == bob
    assert await store.add_member("nowhere", "Bob", "member", "Ada") is None


async def test_visible_rooms_are_public_ones_and_ones_the_user_belongs_to(
    store: SqlStore,
) -> None:
    await store.append_messages([NewMessage("lobby", "Ada", "hi", 1.0)])
    await store.create_room("den.aaaaaaaa", "private", "Ada")
    await store.create_room("ops.bbbbbbbb", "private", "Cy")
    await store.create_room("plaza", "public", "Cy")
    await store.add_member("ops.bbbbbbbb", "Bob", "member", "Cy")
    assert await store.visible_rooms("ada") == [
        RoomView("den.aaaaaaaa", "private", "owner", None, 0, 0),
        RoomView("lobby", "public", None),
        RoomView("plaza", "public", None),
    ]
    assert await store.visible_rooms("bob") == [
        RoomView("lobby", "public", None),
        RoomView("ops.bbbbbbbb", "private", "member", None, 0, 0),
        RoomView("plaza", "public", None),
    ]
    assert await store.visible_rooms("cy") == [
        RoomView("lobby", "public", None),
        RoomView("ops.bbbbbbbb", "private", "owner", None, 0, 0),
        RoomView("plaza", "public", "owner", None, 0, 0),
    ]


async def make_schema_5(url: str) -> None:
    """What the release with private rooms left: version 5, room_members with no mute column."""
    await make_schema_4(url)
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "ALTER TABLE rooms ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'public'"
            )
        )
        await conn.execute(sa.text("ALTER TABLE rooms ADD COLUMN owner VARCHAR(32)"))
        await conn.execute(
            sa.text(
                "CREATE TABLE room_members (room VARCHAR(32) NOT NULL,"
                " user_key VARCHAR(32) NOT NULL, role VARCHAR(16) NOT NULL,"
                " since_id BIGINT NOT NULL, added_by VARCHAR(32), added_at FLOAT NOT NULL,"
                " PRIMARY KEY (room, user_key))"
            )
        )
        await conn.execute(
            sa.text(
                "INSERT INTO rooms (name, last_id, kind, owner)"
                " VALUES ('den.aaaaaaaa', 0, 'private', 'ada')"
            )
        )
        await conn.execute(
            sa.text(
                "INSERT INTO room_members VALUES ('den.aaaaaaaa', 'ada', 'owner', 0, 'ada', 1.0)"
            )
        )
        await conn.execute(sa.text("UPDATE schema_version SET version = 5"))
    await engine.dispose()


async def test_a_schema_5_database_gets_member_events_and_mutes(store_url: str) -> None:
    """Version 6: every old message is a 'say'; a membership and its room keep working,
    and a membership event takes the room's next id and changes the member in one go."""
    from rawws.store.base import BANNED_EVENT, MemberEvent

    await make_schema_5(store_url)
    store = await open_store(store_url)
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        assert [m.kind for m in await store.messages_after("lobby", 0, 10)] == [
            "say",
            "say",
        ]
        assert await store.membership("den.aaaaaaaa", "ada") == Membership(
            "den.aaaaaaaa", "private", "owner", 0, None
        )
        event = await store.apply_member_event(
            MemberEvent("lobby", BANNED_EVENT, "Ada", "bob", "", 5.0, "banned")
        )
        assert (event.id, event.kind, event.target) == (3, "banned", "bob")
        assert (await store.membership("lobby", "BOB")).role == "banned"  # type: ignore[union-attr]
        assert [m.kind for m in await store.messages_after("lobby", 2, 10)] == [
            "banned"
        ]
        assert await store.last_message_id("lobby") == 3
    finally:
        await store.close()
