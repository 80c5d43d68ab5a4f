"""The SQL schema: its tables, its version, the migrations from each older version, and its lock.

A database records its version in ``schema_version``; ``MIGRATIONS[n]`` brings one
from version ``n`` to ``n + 1``. ``SqlStore.initialize`` runs them under ``lock_schema``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from rawws.store.names import username_key, username_skeleton

SCHEMA_VERSION = 13  # 1: users; 2: rooms and messages; 3: refresh tokens and spent tickets; 4: name skeletons;
# 5: room kinds, owners and stored membership; 6: account stops (disabled, admin, not_before);
# 7: membership events in the messages' sequence, mutes; 8: public rooms' writers are members;
# 9: edits and deletions (``EDIT_COLUMNS``); 10: a room's own retention; 11: read markers
# (room_members.last_read); 12: account erasure (users.erased_at); 13: the server API (api keys,
# idempotency records, streams, hook deliveries; messages.app and messages.stream)

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
    # Names are unique regardless of case: "Ada" and "ada" are one user (``names.username_key``).
    sa.Column("username_key", sa.String(32), nullable=False, unique=True),
    # And regardless of look-alikes: "aIice" beside "alice" is refused (``names.username_skeleton``).
    # Unique where set; NULL only for a look-alike registered before version 4 (its first keeps it).
    sa.Column("username_skeleton", sa.String(64), nullable=True),
    sa.Index("users_username_skeleton", "username_skeleton", unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # Version 6, account stops. A disabled user cannot log in, refresh or open a connection.
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    # A server admin: granted only by `rawws admin grant` on the server's machine.
    sa.Column("admin", sa.Boolean, nullable=False, server_default=sa.false()),
    # Epoch seconds: tokens issued at or before it are refused (logout, password change,
    # disable). Indexed: every node polls for the stamps set since its last look.
    sa.Column("not_before", sa.Float, nullable=False, server_default="0"),
    sa.Index("users_not_before", "not_before"),
    # Version 12: when the account was erased (``rawws.store.erasure``); NULL: not erased.
    # The row stays, disabled, for the quarantine, so the name stays taken meanwhile.
    sa.Column("erased_at", sa.Float, nullable=True),
)

rooms = sa.Table(
    "rooms",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    # The last message id given out in this room: ids come from one atomic
    # UPDATE … RETURNING, so they stay ordered with several nodes on one database.
    sa.Column("last_id", sa.BigInteger, nullable=False),
    # 'public' (anyone may join; a room first used by a join or a message is public),
    # 'private' (members only: ``room_members``) or 'direct' (later: two members).
    sa.Column("kind", sa.String(16), nullable=False, server_default="public"),
    # The username key of the user who made it with ``create``; NULL for an implicit room.
    sa.Column("owner", sa.String(32), nullable=True),
    # Version 10: the owner's own retention (NULL: the server's alone), never beyond the server's.
    sa.Column("max_age_s", sa.Float, nullable=True),
    sa.Column("max_messages", sa.BigInteger, nullable=True),
)

# Who belongs to a room, stored so that every node reads the same answer. ``since_id``
# is the room's last message id when the user became a member: of a private room they
# are sent only the messages after it (live, in a ``since`` replay and in history).
room_members = sa.Table(
    "room_members",
    metadata,
    sa.Column("room", sa.String(32), primary_key=True),
    sa.Column("user_key", sa.String(32), primary_key=True, index=True),
    sa.Column(
        "role", sa.String(16), nullable=False
    ),  # 'owner' | 'moderator' | 'member'
    sa.Column("since_id", sa.BigInteger, nullable=False),
    sa.Column("added_by", sa.String(32), nullable=True),
    sa.Column("added_at", sa.Float, nullable=False),
    # Until when (seconds since the epoch) the member's `say` is refused; NULL: not muted.
    sa.Column("muted_until", sa.Float, nullable=True),
    # Version 11: the member's read marker, the highest id they said they read; it only
    # grows (``rawws.store.reads``). In force: the larger of it and ``since_id``.
    sa.Column("last_read", sa.BigInteger, nullable=False, server_default="0"),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("room", sa.String(32), primary_key=True),
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("user", sa.String(64), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    # 'say', or a membership event ('kicked', 'banned', …: ``base.MEMBER_EVENTS``) stored
    # in the same id sequence, so every node applies it in order with the messages.
    sa.Column("kind", sa.String(16), nullable=False, server_default="say"),
    # Whom a membership event is about (as registered); NULL for a 'say'.
    sa.Column("target", sa.String(32), nullable=True),
    # Version 9. An 'edited' or 'deleted' event: the id of the message it changes (its row
    # keeps no text). A 'say': when it was last edited; who deleted it and when (its text is
    # then "": a deletion removes the text, a tombstone remains).
    sa.Column("about", sa.BigInteger, nullable=True),
    sa.Column("edited_at", sa.Float, nullable=True),
    sa.Column("deleted_by", sa.String(64), nullable=True),
    sa.Column("deleted_at", sa.Float, nullable=True),
    # Version 13: published by an application (``user`` is its API key's name), and the
    # stream a finished streamed message came from (NULL for any other).
    sa.Column("app", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("stream", sa.String(32), nullable=True),
)

# Version 13, the server API (``docs/server-api.md``). A key keeps the SHA-256 of its
# secret; ``scopes`` and ``rooms`` are space-separated ("" rooms: every room).
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(32), nullable=False, unique=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("scopes", sa.String(64), nullable=False),
    sa.Column("rooms", sa.Text, nullable=False, server_default=""),
    sa.Column("per_s", sa.Float, nullable=False),
    sa.Column("burst", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
)

# A publish with an idempotency key, recorded in the transaction that stored its message.
api_publishes = sa.Table(
    "api_publishes",
    metadata,
    sa.Column("key_id", sa.String(16), primary_key=True),
    sa.Column("idempotency_key", sa.String(128), primary_key=True),
    sa.Column("body_hash", sa.String(64), nullable=False),
    sa.Column("room", sa.String(32), nullable=False),
    sa.Column("message_id", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
)

# A streamed message while it is open: its text so far; ``message_id`` once finished.
streams = sa.Table(
    "streams",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("room", sa.String(32), nullable=False, index=True),
    sa.Column("user", sa.String(64), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("chunks", sa.Integer, nullable=False),
    sa.Column("opened_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False, index=True),
    sa.Column("message_id", sa.BigInteger, nullable=True),
)

# An "after" hook (a disconnect) until the app acknowledged it or it expired.
hook_deliveries = sa.Table(
    "hook_deliveries",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # X-Rawws-Delivery
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("due_at", sa.Float, nullable=False, index=True),
    sa.Column("expires_at", sa.Float, nullable=False),
)

# A refresh token is stored as the SHA-256 of its random value: a copy of the
# database does not hold a token that works. Tokens of one login share a family;
# each use marks the token used and adds its successor (rotation).
refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("family", sa.String(64), nullable=False, index=True),
    sa.Column("user_id", sa.Integer, nullable=False, index=True),
    sa.Column("username", sa.String(32), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("used_at", sa.Float, nullable=True),
    sa.Column("revoked", sa.Boolean, nullable=False),
)

# Ticket ids spent on a WebSocket upgrade, kept until the ticket would have
# expired, so a spent ticket stays spent across a restart (and across nodes
# on one database).
spent_tickets = sa.Table(
    "spent_tickets",
    metadata,
    sa.Column("token_id", sa.String(64), primary_key=True),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
)

Migration = Callable[[AsyncConnection], Awaitable[None]]


def user_named(username: str) -> sa.Select[Any]:
    """The ``users`` row of ``username``, as names are compared (``names.username_key``)."""
    return sa.select(users).where(users.c.username_key == username_key(username))


async def _add_messages(conn: AsyncConnection) -> None:
    await conn.run_sync(
        lambda sync: metadata.create_all(sync, tables=[rooms, messages])
    )


async def _add_grants(conn: AsyncConnection) -> None:
    await conn.run_sync(
        lambda sync: metadata.create_all(sync, tables=[refresh_tokens, spent_tickets])
    )


async def _add_skeletons(conn: AsyncConnection) -> None:
    """Version 4: each user's look-alike skeleton (and key, by the documented normalisation).

    Names hold ASCII only, where NFKC + case folding equals ``lower()``: no key changes,
    but it is recomputed so the rule is the one in force. Of earlier users whose names
    look alike, the first registered keeps the skeleton; the others keep their accounts.
    """

    def missing(sync: Any) -> bool:
        columns = sa.inspect(sync).get_columns("users")
        return "username_skeleton" not in {column["name"] for column in columns}

    if await conn.run_sync(missing):
        await conn.execute(
            sa.text("ALTER TABLE users ADD COLUMN username_skeleton VARCHAR(64)")
        )
    rows = (
        await conn.execute(sa.select(users.c.id, users.c.username).order_by(users.c.id))
    ).all()
    taken: set[str] = set()
    for row in rows:
        skeleton = username_skeleton(row.username)
        await conn.execute(
            users.update()
            .where(users.c.id == row.id)
            .values(
                username_key=username_key(row.username),
                username_skeleton=None if skeleton in taken else skeleton,
            )
        )
        taken.add(skeleton)
    index = next(i for i in users.indexes if i.name == "users_username_skeleton")
    await conn.run_sync(lambda sync: index.create(sync, checkfirst=True))


async def _add_room_kinds(conn: AsyncConnection) -> None:
    """Version 5: rooms get a kind and an owner; membership is stored (``room_members``).

    Every room a release before it made is public (there was no other kind) with no
    owner. ``create_all`` has made ``room_members`` already; it is made here too so
    this step stands alone (it may be renumbered when other migrations land).
    """

    def missing(sync: Any) -> set[str]:
        columns = {column["name"] for column in sa.inspect(sync).get_columns("rooms")}
        return {"kind", "owner"} - columns

    absent = await conn.run_sync(missing)
    if "kind" in absent:
        await conn.execute(
            sa.text(
                "ALTER TABLE rooms ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'public'"
            )
        )
    if "owner" in absent:
        await conn.execute(sa.text("ALTER TABLE rooms ADD COLUMN owner VARCHAR(32)"))
    await conn.run_sync(lambda sync: metadata.create_all(sync, tables=[room_members]))


ACCOUNT_STOP_COLUMNS = (
    ("disabled", "BOOLEAN NOT NULL DEFAULT FALSE"),
    ("admin", "BOOLEAN NOT NULL DEFAULT FALSE"),
    ("not_before", "FLOAT NOT NULL DEFAULT 0"),
)


async def _add_account_stops(conn: AsyncConnection) -> None:
    """Version 6: ``disabled``, ``admin`` and ``not_before`` on every user, and the stamp's index.

    Kept one function (as each migration is) so a merge beside another version 5 only renumbers it.
    Existing users are enabled, not admins, and have no stamp (0: every token of theirs stands).
    """

    def present(sync: Any) -> set[str]:
        return {column["name"] for column in sa.inspect(sync).get_columns("users")}

    have = await conn.run_sync(present)
    for name, declaration in ACCOUNT_STOP_COLUMNS:
        if name not in have:
            await conn.execute(
                sa.text(f"ALTER TABLE users ADD COLUMN {name} {declaration}")
            )
    index = next(i for i in users.indexes if i.name == "users_not_before")
    await conn.run_sync(lambda sync: index.create(sync, checkfirst=True))


async def _add_member_events(conn: AsyncConnection) -> None:
    """Version 7: messages get a kind (every earlier row is a 'say') and a target; members a mute.

    A step of its own, so that it can be renumbered when other migrations land beside it.
    """

    def columns(sync: Any, table: str) -> set[str]:
        return {column["name"] for column in sa.inspect(sync).get_columns(table)}

    found = await conn.run_sync(columns, "messages")
    if "kind" not in found:
        await conn.execute(
            sa.text(
                "ALTER TABLE messages ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'say'"
            )
        )
    if "target" not in found:
        await conn.execute(
            sa.text("ALTER TABLE messages ADD COLUMN target VARCHAR(32)")
        )
    if "muted_until" not in await conn.run_sync(columns, "room_members"):
        await conn.execute(
            sa.text("ALTER TABLE room_members ADD COLUMN muted_until FLOAT")
        )


async def _add_public_writers(conn: AsyncConnection) -> None:
    """Version 8: whoever wrote in a public room is its member from its start (``since_id`` 0).

    From version 8 on a public room's membership begins with a stored ``joined`` event and
    its history is read from there; before, joining stored nothing. So that upgrading
    hides nothing from those who took part, each registered user who wrote in a public
    room gets the membership they would have had; others join anew (and read from then).
    """
    written = sa.select(messages.c.room, messages.c.user).distinct()
    written = written.join(rooms, rooms.c.name == messages.c.room)
    written = written.where(rooms.c.kind == "public", messages.c.kind == "say")
    rows = (await conn.execute(written)).all()
    registered = {
        row.username_key for row in await conn.execute(sa.select(users.c.username_key))
    }
    present = {
        (row.room, row.user_key)
        for row in await conn.execute(
            sa.select(room_members.c.room, room_members.c.user_key)
        )
    }
    now = time.time()
    new = {
        (row.room, username_key(row.user))
        for row in rows
        if username_key(row.user) in registered
    } - present
    if new:
        await conn.execute(
            room_members.insert(),
            [
                dict(room=room, user_key=key, role="member", since_id=0)
                | dict(added_by=key, added_at=now)
                for room, key in sorted(new)
            ],
        )


EDIT_COLUMNS = (
    ("about", "BIGINT"),
    ("edited_at", "FLOAT"),
    ("deleted_by", "VARCHAR(64)"),
    ("deleted_at", "FLOAT"),
)


async def _add_edits(conn: AsyncConnection) -> None:
    """Version 9: messages get ``about`` (an edit or deletion event's message), ``edited_at``,
    ``deleted_by`` and ``deleted_at``; every earlier row is a message never edited nor deleted.

    One function, so that a merge beside another version 9 only renumbers it.
    """

    def present(sync: Any) -> set[str]:
        return {column["name"] for column in sa.inspect(sync).get_columns("messages")}

    have = await conn.run_sync(present)
    for name, declaration in EDIT_COLUMNS:
        if name not in have:
            await conn.execute(
                sa.text(f"ALTER TABLE messages ADD COLUMN {name} {declaration}")
            )


async def _add_room_retention(conn: AsyncConnection) -> None:
    """Version 10: rooms get ``max_age_s`` and ``max_messages``, a room's own retention (none yet).

    One function, so that a merge beside another migration only renumbers it.
    """

    def present(sync: Any) -> set[str]:
        return {column["name"] for column in sa.inspect(sync).get_columns("rooms")}

    have = await conn.run_sync(present)
    for name, declaration in (("max_age_s", "FLOAT"), ("max_messages", "BIGINT")):
        if name not in have:
            await conn.execute(
                sa.text(f"ALTER TABLE rooms ADD COLUMN {name} {declaration}")
            )


async def _add_read_markers(conn: AsyncConnection) -> None:
    """Version 11: every membership gets a read marker, 0 (its ``since_id`` counts until one is set).

    One function, so a merge beside another version 9 only renumbers it.
    """

    def columns(sync: Any) -> set[str]:
        return {c["name"] for c in sa.inspect(sync).get_columns("room_members")}

    if "last_read" not in await conn.run_sync(columns):
        await conn.execute(
            sa.text(
                "ALTER TABLE room_members ADD COLUMN last_read BIGINT NOT NULL DEFAULT 0"
            )
        )


async def _add_erasure(conn: AsyncConnection) -> None:
    """Version 12: users get ``erased_at`` (NULL: nobody is erased yet).

    One function, so a merge beside another version 12 only renumbers it.
    """

    def columns(sync: Any) -> set[str]:
        return {c["name"] for c in sa.inspect(sync).get_columns("users")}

    if "erased_at" not in await conn.run_sync(columns):
        await conn.execute(sa.text("ALTER TABLE users ADD COLUMN erased_at FLOAT"))


async def _add_server_api(conn: AsyncConnection) -> None:
    """Version 13: the server API's tables, and messages' ``app`` and ``stream`` columns.

    One function, so a merge beside another version 13 only renumbers it.
    """

    def columns(sync: Any) -> set[str]:
        return {c["name"] for c in sa.inspect(sync).get_columns("messages")}

    have = await conn.run_sync(columns)
    if "app" not in have:
        await conn.execute(
            sa.text(
                "ALTER TABLE messages ADD COLUMN app BOOLEAN NOT NULL DEFAULT false"
            )
        )
    if "stream" not in have:
        await conn.execute(
            sa.text("ALTER TABLE messages ADD COLUMN stream VARCHAR(32)")
        )
    await conn.run_sync(
        lambda sync: metadata.create_all(
            sync, tables=[api_keys, api_publishes, streams, hook_deliveries]
        )
    )


#: ``MIGRATIONS[n]`` upgrades a database from version ``n`` to ``n + 1``.
MIGRATIONS: dict[int, Migration] = {
    1: _add_messages,
    2: _add_grants,
    3: _add_skeletons,
    4: _add_room_kinds,
    5: _add_account_stops,
    6: _add_member_events,
    7: _add_public_writers,
    8: _add_edits,
    9: _add_room_retention,
    10: _add_read_markers,
    11: _add_erasure,
    12: _add_server_api,
}


# PostgreSQL: an advisory lock held by the transaction that makes or migrates the schema.
SCHEMA_LOCK_KEY = 0x72617777735F7363  # "rawws_sc": any constant every rawws uses alike


async def lock_schema(conn: AsyncConnection) -> None:
    """One schema maker at a time: PostgreSQL's advisory lock; SQLite's write lock, taken up front."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY}
        )
    elif conn.dialect.name == "sqlite":
        await conn.exec_driver_sql("BEGIN IMMEDIATE")
