"""Feed rooms through the chat service (docs/server-api.md, "Feed rooms"): anyone signed in joins
and reads one like a public room; its members only read; only an application publishes there.

Driven as the server drives the handler, on SQLite and the real PostgreSQL (``test_doors``'s
node). A feed is made in the store and published to as the server API does: stored with
``app=True``, then handed to the node's feed (``RoomFeed.stored_here``).
"""

from __future__ import annotations

import json
import time

from rawws.chat import wire as chat
from rawws.store import NewMessage, SqlStore
from rawws.store.base import FEED, PUBLIC
from tests.chat.test_doors import Node, kind_of, opened, settle
from tests.chat.test_doors import store_url as store_url  # the fixture

APP = "newsdesk"  # the API key's name the application publishes as


async def publish(
    node: Node, store: SqlStore, room: str, text: str, user: str = APP
) -> int:
    """What the server API's publish does: store with ``app``, then to this node's feed."""
    (stored,) = await store.append_messages(
        [NewMessage(room, user, text, time.time(), app=True)]
    )
    node.handler.feed.stored_here(stored)
    await settle(node.handler)
    return stored.id


def messages_of(frames: list[dict], room: str) -> list[dict]:
    return [f for f in frames if f["type"] == "message" and f["room"] == room]


async def test_a_feed_is_read_like_a_public_room_and_written_only_by_its_app(
    store_url: str,
) -> None:
    store = await opened(store_url)
    assert await store.create_room("news", FEED, APP) is not None
    node = Node(store)
    try:
        ann, bob = node.connect("ann"), node.connect("bob")
        joined = await node.answer(ann, type="join", room="news")
        assert (joined["type"], joined["kind"]) == ("joined", FEED)
        await node.answer(bob, type="join", room="news")
        first = await publish(node, store, "news", "headline")
        for peer in (ann, bob):
            (got,) = messages_of(peer.frames, "news")
            assert (got["id"], got["user"], got["text"], got["app"]) == (
                first,
                APP,
                "headline",
                True,
            )
        last = await store.last_message_id("news")
        refused = {
            "say": await node.answer(ann, type="say", room="news", text="me", ref="s"),
            "edit": await node.answer(
                ann, type="edit", room="news", id=first, text="x", ref="e"
            ),
            "delete": await node.answer(
                ann, type="delete", room="news", id=first, ref="d"
            ),
        }
        for name, answer in refused.items():
            assert (answer["code"], answer["ref"]) == (chat.FORBIDDEN, name[0]), answer
            assert "feed" in answer["message"]
        before = len(bob.frames)
        typing = await node.answer(ann, type="typing", room="news")
        assert typing["code"] == chat.FORBIDDEN
        assert [f for f in bob.frames[before:] if f["type"] == "typing"] == []
        assert await store.last_message_id("news") == last  # nothing stored
        # reading is theirs: a read marker, history, who, rooms, a rejoin with since
        marked = await node.answer(ann, type="read", room="news", id=first, ref="r")
        assert (marked["type"], marked["last_read"]) == ("read", first)
        history = await node.answer(ann, type="history", room="news")
        said = [m for m in history["messages"] if m["type"] == "message"]
        assert [(m["text"], m.get("app")) for m in said] == [("headline", True)]
        assert (await node.answer(ann, type="who", room="news"))["type"] == "members"
        rooms = (await node.answer(ann, type="rooms", ref="l"))["rooms"]
        assert {"room": "news", "kind": FEED} in [
            {"room": r["room"], "kind": r["kind"]} for r in rooms
        ]
        again = node.connect("ann")
        await node.answer(again, type="join", room="news", since=0)
        assert [m["text"] for m in messages_of(again.frames, "news")] == ["headline"]
        # a public room beside it: unchanged, and its joined says so
        plaza = await node.answer(ann, type="join", room="plaza")
        assert plaza["kind"] == PUBLIC
        said = await node.answer(ann, type="say", room="plaza", text="hi", ref="p")
        assert kind_of(said) == "ack"
    finally:
        await node.handler.close()
        await store.close()


async def test_not_even_a_feeds_stored_owner_changes_an_apps_message(
    store_url: str,
) -> None:
    """``delete`` of anything is refused in a feed: the store would let an owner delete
    another's message, the feed's read-only rule comes first. An app named as a user
    (``ann``) cannot be edited by that user either."""
    store = await opened(store_url)
    await store.create_room("bulletin", FEED, "ann")
    node = Node(store)
    try:
        ann = node.connect("ann")
        await node.answer(ann, type="join", room="bulletin")
        mine = await publish(node, store, "bulletin", "by an app named ann", user="ann")
        for frame in (
            {"type": "delete", "id": mine, "ref": "d"},
            {"type": "edit", "id": mine, "text": "mine now", "ref": "e"},
        ):
            answer = await node.answer(ann, room="bulletin", **frame)
            assert answer["code"] == chat.FORBIDDEN
        assert await store.last_message_id("bulletin") == mine
    finally:
        await node.handler.close()
        await store.close()


async def test_frames_sent_before_the_join_is_answered_are_refused_too(
    store_url: str,
) -> None:
    """A join, then at once a say and an edit: the feed's kind is not known yet when they
    arrive (the join is still reading the membership); they are refused all the same."""
    store = await opened(store_url)
    await store.create_room("news", FEED, APP)
    node = Node(store)
    try:
        # by an app named as the user: the store alone would let her edit it
        first = await publish(node, store, "news", "headline", user="ann")
        ann = node.connect("ann")
        for frame in (
            {"type": "join", "room": "news"},
            {"type": "say", "room": "news", "text": "early", "ref": "s"},
            {"type": "edit", "room": "news", "id": first, "text": "x", "ref": "e"},
        ):
            node.handler.on_message(ann, json.dumps(frame))
        await settle(node.handler)
        errors = {f["ref"]: f["code"] for f in ann.frames if f["type"] == "error"}
        assert errors == {"s": chat.FORBIDDEN, "e": chat.FORBIDDEN}
        assert [f["type"] for f in ann.frames if f["type"] == "ack"] == []
        # ann's own joined event (her first join) is all that was stored after the headline
        assert await store.last_message_id("news") == first + 1
    finally:
        await node.handler.close()
        await store.close()


async def test_a_user_cannot_make_a_feed(store_url: str) -> None:
    store = await opened(store_url)
    node = Node(store)
    try:
        ann = node.connect("ann")
        answer = await node.answer(ann, type="create", room="news", kind=FEED, ref="c")
        assert answer["code"] == chat.BAD_FIELD
        assert await store.room_info("news") is None
        # a public join of a missing room still makes a public room, not a feed
        joined = await node.answer(ann, type="join", room="news")
        assert joined["kind"] == PUBLIC
        assert (await store.room_info("news")).kind == PUBLIC  # type: ignore[union-attr]
    finally:
        await node.handler.close()
        await store.close()
