"""``publish`` and ``publish_batch`` on a real server (SQLite and PostgreSQL): delivery to a
member over /ws, exactly once with an idempotency key (on one node and on two), conflicts,
and a batch whose messages each stand alone."""

from __future__ import annotations

import asyncio

import jsonschema
import pytest

from rawws.apps.openapi import CALLS
from rawws.chat.app import open_app_store
from rawws.server.server import Server
from tests.apps.api import call, error_code, make_key
from tests.conftest import StartServer
from tests.support.chat_client import ChatClient, chatting


def valid(name: str, answer: dict) -> None:
    """``answer`` is what the OpenAPI document says ``name`` answers."""
    jsonschema.validate(answer, CALLS[name][3])


async def messages_with(server: Server, room: str, text: str) -> list[int]:
    """The ids of the stored messages of ``room`` with ``text``."""
    store = await open_app_store(server.config)
    try:
        stored = await store.messages_before(room, None, 500)
    finally:
        await store.close()
    return [m.id for m in stored if m.text == text]


async def joined(client: ChatClient, room: str) -> None:
    await client.join(room)


async def test_a_publish_reaches_a_member_as_the_apps_message(
    start_server: StartServer, db_url: str | None
) -> None:
    server = await start_server(db_url=db_url)
    key, _ = await make_key(server, "ticker", "publish")
    async with chatting(server, "ann") as (ann,):
        await joined(ann, "news")
        reply = await call(server, "publish", {"room": "news", "text": "up 3%"}, key)
        assert reply.status == 200, reply
        valid("publish", reply.json)
        assert reply.json["room"] == "news" and reply.json["duplicate"] is False
        frame = await ann.wait_frame("message", room="news", id=reply.json["id"])
        assert (frame["user"], frame["text"], frame["app"]) == ("ticker", "up 3%", True)


async def test_a_feed_room_and_a_private_room_take_a_publish(
    start_server: StartServer, db_url: str | None
) -> None:
    server = await start_server(db_url=db_url)
    key, _ = await make_key(server, "ticker", "publish")
    store = await open_app_store(server.config)
    try:
        await store.create_room("quotes", "feed", "ann")
        await store.create_room("den.abcdefgh", "private", "ann")
    finally:
        await store.close()
    for room in ("quotes", "den.abcdefgh"):
        reply = await call(server, "publish", {"room": room, "text": "hi"}, key)
        assert reply.status == 200, reply
        assert await messages_with(server, room, "hi") == [reply.json["id"]]


async def test_the_same_idempotency_key_stores_and_delivers_once(
    start_server: StartServer, db_url: str | None
) -> None:
    server = await start_server(db_url=db_url)
    key, _ = await make_key(server, "ticker", "publish")
    once = {"room": "news", "text": "once", "idempotency_key": "order-17"}
    async with chatting(server, "ann") as (ann,):
        await joined(ann, "news")
        first = await call(server, "publish", once, key)
        again = await call(server, "publish", once, key)
        assert first.status == again.status == 200
        valid("publish", again.json)
        assert again.json == {**first.json, "duplicate": True}
        other = await call(
            server, "publish", {**once, "text": "other"}, key
        )  # the same key, another body
        assert other.status == 409 and error_code(other) == "idempotency_conflict"
        after = await call(server, "publish", {"room": "news", "text": "next"}, key)
        await ann.wait_frame("message", room="news", id=after.json["id"])
        assert ann.message_ids("news").count(first.json["id"]) == 1
        assert [f["text"] for f in ann.messages("news")] == ["once", "next"]
    assert await messages_with(server, "news", "once") == [first.json["id"]]
    assert await messages_with(server, "news", "other") == []


async def test_two_nodes_racing_one_idempotency_key_store_one_message(
    start_server: StartServer,
    db_url: str | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Calls with one key at once on two nodes of one database: one stores, the others
    answer its record as duplicates; nothing else is stored (their transactions rolled back)."""
    data = str(tmp_path_factory.mktemp("shared"))
    nodes = [await start_server(db_url=db_url, data_dir=data) for _ in range(2)]
    key, _ = await make_key(nodes[0], "ticker", "publish")
    async with chatting(nodes[0], "ann") as (ann,):
        await joined(ann, "news")
    for attempt in range(5):
        body = {
            "room": "news",
            "text": f"race {attempt}",
            "idempotency_key": f"k{attempt}",
        }
        replies = await asyncio.gather(
            *(call(nodes[n % 2], "publish", body, key) for n in range(6))
        )
        assert {r.status for r in replies} == {200}, replies
        assert len({r.json["id"] for r in replies}) == 1
        assert sorted(r.json["duplicate"] for r in replies) == [False] + [True] * 5
        assert await messages_with(nodes[0], "news", body["text"]) == [
            replies[0].json["id"]
        ]
    # no id was taken by a rolled-back publish: the next one follows the last
    last = await call(nodes[1], "publish", {"room": "news", "text": "last"}, key)
    assert last.json["id"] == replies[0].json["id"] + 1


async def test_each_message_of_a_batch_stands_alone(
    start_server: StartServer, db_url: str | None
) -> None:
    server = await start_server(db_url=db_url)
    key, _ = await make_key(server, "ticker", "publish", rooms=("news", "sport-*"))
    async with chatting(server, "ann") as (ann,):
        await joined(ann, "news")
        await joined(ann, "sport-1")
        batch = [
            {"room": "news", "text": "one"},
            {"room": "elsewhere", "text": "outside the key"},
            {"room": "sport-1", "text": "two", "idempotency_key": "b1"},
            {"room": "news", "text": "", "idempotency_key": "b2"},
            "not an object",
            {"room": "news", "text": "three", "colour": "red"},
            {"room": "sport-1", "text": "two", "idempotency_key": "b1"},
        ]
        reply = await call(server, "publish_batch", {"messages": batch}, key)
        assert reply.status == 200, reply
        valid("publish_batch", reply.json)
        results = reply.json["results"]
        codes = [r["error"]["code"] if "error" in r else None for r in results]
        assert codes == [
            None,
            "no_such_room",
            None,
            "bad_field",
            "bad_field",
            "bad_field",
            None,
        ]
        assert results[6] == {**results[2], "duplicate": True}
        await ann.wait_frame("message", room="sport-1", id=results[2]["id"])
        await ann.wait_frame("message", room="news", id=results[0]["id"])
    assert await messages_with(server, "news", "three") == []
    too_many = {"messages": [{"room": "news", "text": "x"}] * 101}
    reply = await call(server, "publish_batch", too_many, key)
    assert reply.status == 400 and error_code(reply) == "bad_field"
    assert await messages_with(server, "news", "x") == []
