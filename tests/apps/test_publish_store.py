"""The exactly-once publish in the store, on SQLite and PostgreSQL: the record and the
message in one transaction, a vanished room, the window's sweep; an application's message
is nobody's own to edit; a duplicate offered to the feed again is delivered once."""

from __future__ import annotations

import hashlib
import json

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from rawws.apps.publish import Wanted
from rawws.chat.feed import RoomFeed
from rawws.store import NewMessage, SqlStore
from rawws.store.base import MODERATOR, NotYours
from rawws.store.publishes import IdempotencyConflict, NoRoom
from rawws.store.schema import api_publishes


def app_message(room: str, text: str, ts: float = 10.0) -> NewMessage:
    return NewMessage(room, "ticker", text, ts, app=True)


async def records(store: SqlStore) -> int:
    async with store.engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    sa.select(sa.func.count()).select_from(api_publishes)
                )
            ).scalar_one()
        )


async def test_a_record_comes_with_its_message_and_a_repeat_finds_it(
    store: SqlStore,
) -> None:
    await store.create_room("news", "public", "ann")
    first = await store.publish_once("k1", "i1", "h1", app_message("news", "one"))
    assert (first.duplicate, first.message is not None) == (False, True)
    again = await store.publish_once("k1", "i1", "h1", app_message("news", "one", 11.0))
    assert (again.room, again.id, again.duplicate) == ("news", first.id, True)
    assert (
        again.message is not None and again.message.app and again.message.text == "one"
    )
    other_key = await store.publish_once("k2", "i1", "h1", app_message("news", "one"))
    assert other_key.id == first.id + 1 and not other_key.duplicate
    with pytest.raises(IdempotencyConflict):
        await store.publish_once("k1", "i1", "h2", app_message("news", "two"))
    assert await store.last_message_id("news") == other_key.id
    plain = await store.publish_once("k1", None, "h3", app_message("news", "three"))
    assert plain.id == other_key.id + 1 and await records(store) == 2


async def test_a_missing_room_stores_nothing(store: SqlStore) -> None:
    with pytest.raises(NoRoom):
        await store.publish_once("k1", "i1", "h1", app_message("nowhere", "x"))
    assert await records(store) == 0
    assert await store.messages_before("nowhere", None, 10) == []


async def test_the_sweep_forgets_records_past_the_window(store: SqlStore) -> None:
    await store.create_room("news", "public", "ann")
    old = await store.publish_once("k1", "i1", "h1", app_message("news", "a", 1.0))
    await store.publish_once("k1", "i2", "h1", app_message("news", "b", 5.0))
    assert await store.forget_publishes(5.0) == 1
    assert await records(store) == 1
    reused = await store.publish_once("k1", "i1", "h1", app_message("news", "a", 6.0))
    assert not reused.duplicate and reused.id != old.id


async def test_an_apps_message_is_nobodys_own(store: SqlStore) -> None:
    """A user named like the key may neither edit nor delete it as its author; the
    room's owner and moderators may delete it."""
    await store.create_room("den.abcdefgh", "private", "ann")
    await store.add_member("den.abcdefgh", "ticker", MODERATOR, "ann")
    await store.add_member("den.abcdefgh", "cy", "member", "ann")
    ids = [
        (await store.publish_once("k", None, "h", app_message("den.abcdefgh", t))).id
        for t in ("a", "b")
    ]
    plain = (
        await store.append_messages([NewMessage("den.abcdefgh", "cy", "own", 1.0)])
    )[0]
    with pytest.raises(NotYours):
        await store.change_message("den.abcdefgh", ids[0], "Ticker", "forged", 2.0)
    with pytest.raises(NotYours):
        await store.change_message("den.abcdefgh", ids[0], "cy", None, 2.0)
    # a moderator (here the user named like the key) and the owner may delete it
    assert (
        await store.change_message("den.abcdefgh", ids[0], "ticker", None, 3.0)
    ).about == ids[0]
    assert (
        await store.change_message("den.abcdefgh", ids[1], "ann", None, 3.0)
    ).about == ids[1]
    assert (
        await store.change_message("den.abcdefgh", plain.id, "cy", "mine", 4.0)
    ).text == "mine"


async def test_a_duplicate_offered_again_is_delivered_once(store: SqlStore) -> None:
    """The publish of a duplicate hands the message to the feed again: the sequencer drops
    an id it delivered, and delivers one it had not (the node that died before the bus)."""
    await store.create_room("news", "public", "ann")
    delivered: list[int] = []
    feed = RoomFeed(store, lambda room, text, message_id: delivered.append(message_id))
    feed.open_room("news")
    feed.start_room("news", 0)
    first = await store.publish_once("k", "i", "h", app_message("news", "a"))
    assert first.message is not None
    feed.stored_here(first.message)
    again = await store.publish_once("k", "i", "h", app_message("news", "a"))
    assert again.duplicate and again.message is not None
    feed.stored_here(again.message)
    feed.stored_here(again.message)
    assert delivered == [first.id]
    await feed.close()


@given(st.text(max_size=20), st.text(max_size=40), st.text(max_size=40))
def test_the_body_hash_is_of_room_and_text_alone(
    room: str, text: str, other: str
) -> None:
    """The same room and text hash alike whatever the idempotency key; another text differs."""
    first = Wanted(room, text, "a").body_hash()
    assert first == Wanted(room, text, None).body_hash()
    assert (first == Wanted(room, other, "a").body_hash()) == (text == other)
    canonical = json.dumps({"text": text, "room": room}, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)  # fmt: skip
    assert (
        first == hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    )
