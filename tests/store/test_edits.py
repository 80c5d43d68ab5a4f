"""Edits and deletions in the store (schema 9), on a real SQLite file and a real PostgreSQL.

What must hold: an edit or deletion is an event with the room's next id; its row keeps
no text; a deletion leaves no trace of the text in the database (the grep tests read
the SQLite file and a ``pg_dump`` of the database); a refused change stores nothing and
takes no id; replayed events carry their message's current text, history none of them.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import sqlalchemy as sa

from rawws.store import NewMessage, SqlStore, open_store, sqlite_url
from rawws.store.base import (
    DELETED,
    EDITED,
    MODERATOR,
    MessageNotFound,
    NotYours,
)
from rawws.store.schema import messages, schema_version
from rawws.store.sql import SCHEMA_VERSION
from tests.support.postgres import dump_database

#: After a unique text: a deleted row's text is long, so the shorter row written in its
#: place (SQLite puts it at the end of the space freed) cannot cover it by chance, and the
#: grep finds it wherever ``secure_delete`` would not have zeroed it.
PADDING = " and more" * 40
HASH = "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"


async def say(store: SqlStore, room: str, user: str, text: str) -> int:
    stored = await store.append_messages([NewMessage(room, user, text, 1.0)])
    return stored[0].id


async def test_an_edit_is_the_rooms_next_id_and_its_row_keeps_no_text(
    store: SqlStore,
) -> None:
    """The event takes the next id; the message holds the new text and when it changed;
    a replay gives the event with that text, history the message alone."""
    first = await say(store, "lobby", "Ann", "helo")
    event = await store.change_message("lobby", first, "ann", "hello", 5.0)
    assert (event.id, event.kind, event.about, event.text, event.user) == (
        2,
        EDITED,
        first,
        "hello",
        "ann",
    )
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(sa.select(messages.c.text).where(messages.c.id == 2))
        ).one()
    assert row.text == ""
    replay = await store.messages_after("lobby", 0, 10)
    assert [(m.id, m.kind, m.text, m.about) for m in replay] == [
        (1, "say", "hello", None),
        (2, EDITED, "hello", 1),
    ]
    assert replay[0].edited_at == 5.0
    history = await store.messages_before("lobby", None, 10)
    assert [(m.id, m.text, m.edited_at) for m in history] == [(1, "hello", 5.0)]


async def test_a_deletion_empties_the_text_and_keeps_a_tombstone(
    store: SqlStore,
) -> None:
    """Deleted: "" with who and when; an earlier edit event read back carries "" too."""
    first = await say(store, "lobby", "ann", "one")
    await store.change_message("lobby", first, "ann", "two", 2.0)
    event = await store.change_message("lobby", first, "ann", None, 3.0)
    assert (event.id, event.kind, event.about, event.text) == (3, DELETED, first, "")
    replay = await store.messages_after("lobby", 0, 10)
    assert [(m.kind, m.text) for m in replay] == [
        ("say", ""),
        (EDITED, ""),
        (DELETED, ""),
    ]
    assert (replay[0].deleted_by, replay[0].deleted_at) == ("ann", 3.0)
    assert replay[1].deleted_at == 3.0  # the edit's message is gone since
    history = await store.messages_before("lobby", None, 10)
    assert [(m.id, m.text, m.deleted_by) for m in history] == [(1, "", "ann")]


async def test_owners_and_moderators_delete_anyones_members_only_their_own(
    store: SqlStore,
) -> None:
    await store.create_room("den.abcdefgh", "private", "ann")
    await store.add_member("den.abcdefgh", "bob", MODERATOR, "ann")
    await store.add_member("den.abcdefgh", "cy", "member", "ann")
    ids = [await say(store, "den.abcdefgh", "cy", f"m{n}") for n in range(3)]
    with pytest.raises(NotYours):
        await store.change_message("den.abcdefgh", ids[0], "ann", "not mine", 1.0)
    with pytest.raises(NotYours):
        await store.change_message("den.abcdefgh", ids[0], "bob", "nor mine", 1.0)
    bobs = await say(store, "den.abcdefgh", "bob", "the moderator's")
    with pytest.raises(NotYours):
        await store.change_message("den.abcdefgh", bobs, "cy", None, 1.0)
    assert (
        await store.change_message("den.abcdefgh", ids[0], "ann", None, 2.0)
    ).user == "ann"
    assert (
        await store.change_message("den.abcdefgh", ids[1], "BOB", None, 2.0)
    ).user == "BOB"
    assert (
        await store.change_message("den.abcdefgh", ids[2], "Cy", None, 2.0)
    ).user == "Cy"
    history = await store.messages_before("den.abcdefgh", None, 10)
    assert [(m.text, m.deleted_by) for m in history] == [
        ("", "ann"),
        ("", "BOB"),
        ("", "Cy"),
        ("the moderator's", None),
    ]


async def test_a_refused_change_stores_nothing_and_takes_no_id(
    store: SqlStore,
) -> None:
    """Unknown id, an event's id, another room's message, a deleted one: ``MessageNotFound``."""
    await store.join_public("lobby", "ann", 1.0)  # id 1: a membership event
    mine = await say(store, "lobby", "ann", "mine")
    elsewhere = await say(store, "other", "ann", "elsewhere")
    gone = await say(store, "lobby", "ann", "gone")
    await store.change_message("lobby", gone, "ann", None, 2.0)
    before = await store.messages_after("lobby", 0, 100)
    last = await store.last_message_id("lobby")
    for target in (1, 999, gone, elsewhere + 100):
        for text in ("new", None):
            with pytest.raises(MessageNotFound):
                await store.change_message("lobby", target, "ann", text, 3.0)
    with pytest.raises(MessageNotFound):
        await store.change_message("nowhere", mine, "ann", "x", 3.0)
    assert elsewhere == 1 and mine == 2
    with pytest.raises(
        MessageNotFound
    ):  # id 1 of "other" exists, of "lobby" it is an event
        await store.change_message("lobby", elsewhere, "ann", "x", 3.0)
    assert await store.last_message_id("lobby") == last
    assert await store.messages_after("lobby", 0, 100) == before
    assert await store.last_message_id("nowhere") == 0


async def test_a_deleted_text_is_not_in_the_sqlite_file(tmp_path: Path) -> None:
    """The grep test: a unique text, deleted: its bytes are in no file the store left,
    nor in the WAL while the store is still open (the deletion checkpoints it)."""
    store = await open_store(sqlite_url(tmp_path))
    secret = f"secret-{secrets.token_hex(8)}".encode()
    kept = f"kept-{secrets.token_hex(8)}".encode()
    try:
        gone = await say(store, "lobby", "ann", secret.decode() + PADDING)
        await say(store, "lobby", "ann", kept.decode())
        edited = await say(store, "lobby", "ann", f"{secret.decode()}-2{PADDING}")
        await store.change_message("lobby", edited, "ann", "changed", 2.0)
        await store.change_message("lobby", gone, "ann", None, 3.0)
        files = sorted(tmp_path.iterdir())
        assert any(kept in path.read_bytes() for path in files)  # the grep can see text
        assert [p.name for p in files if secret in p.read_bytes()] == []
    finally:
        await store.close()
    files = sorted(tmp_path.iterdir())
    assert any(kept in path.read_bytes() for path in files)
    assert [p.name for p in files if secret in p.read_bytes()] == []


async def test_a_deleted_text_is_not_in_a_postgresql_dump(postgres_url: str) -> None:
    """The grep test on PostgreSQL: ``pg_dump`` of the database holds the kept text, not the deleted."""
    store = await open_store(postgres_url)
    secret = f"secret-{secrets.token_hex(8)}"
    kept = f"kept-{secrets.token_hex(8)}"
    try:
        gone = await say(store, "lobby", "ann", secret + PADDING)
        await say(store, "lobby", "ann", kept)
        edited = await say(store, "lobby", "ann", f"{secret}-2{PADDING}")
        await store.change_message("lobby", edited, "ann", "changed", 2.0)
        await store.change_message("lobby", gone, "ann", None, 3.0)
    finally:
        await store.close()
    dump = dump_database(postgres_url)
    assert kept.encode() in dump
    assert secret.encode() not in dump


async def test_a_version_8_database_gets_the_edit_columns(tmp_path: Path) -> None:
    """Version 8 had no ``about``, ``edited_at``, ``deleted_by``, ``deleted_at``: they are
    added (the columns dropped here as 8 had none), and its messages read as never changed."""
    store = await open_store(sqlite_url(tmp_path))
    await say(store, "lobby", "ann", "old")
    async with store.engine.begin() as conn:
        for column in ("about", "edited_at", "deleted_by", "deleted_at"):
            await conn.exec_driver_sql(f"ALTER TABLE messages DROP COLUMN {column}")
        await conn.execute(schema_version.update().values(version=8))
    await store.close()
    store = await open_store(sqlite_url(tmp_path))
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        [old] = await store.messages_after("lobby", 0, 10)
        assert (old.text, old.edited_at, old.deleted_at) == ("old", None, None)
        event = await store.change_message("lobby", old.id, "ann", "new", 2.0)
        assert event.id == 2
    finally:
        await store.close()
