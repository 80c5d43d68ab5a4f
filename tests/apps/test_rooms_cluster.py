"""The server API's calls that reach every node: two real servers on one PostgreSQL and one real
``redis-server``. A call made on one node closes (``users_disconnect``) or takes out of a
removed room (``rooms_delete``) the connections on the other, over the bus; a room made again
under a removed name is numbered from 1 on both nodes; ``presence`` sees both nodes."""

from __future__ import annotations

import asyncio

from rawws.chat.codec import Heads, decode_event
from rawws.server.server import Server
from tests.apps.api_keys import api, insert_key
from tests.conftest import StartServer
from tests.support.chat_client import (
    ChatClient,
    chat_handler,
    close_quietly,
    connect_chat,
    login,
    new_users,
)
from tests.support.helpers import TIMEOUT_S, wait_for_condition
from tests.support.redis_server import RedisServer

SECRET = "rooms-cluster-test-secret-" + "x" * 32


async def two_nodes(
    start_server: StartServer, postgres_url: str, redis_server: RedisServer
) -> tuple[Server, Server]:
    settings = {
        "db_url": postgres_url,
        "bus_url": redis_server.url,
        "jwt_secret": SECRET,
        "bus_heartbeat_s": 0.2,
        "logins_per_minute_per_address": 100_000,
        "logins_per_minute_per_user": 100_000,
    }
    return await start_server(**settings), await start_server(**settings)


async def test_users_disconnect_closes_the_users_connections_on_every_node(
    start_server: StartServer, postgres_url: str, redis_server: RedisServer
) -> None:
    a, b = await two_nodes(start_server, postgres_url, redis_server)
    tokens = await new_users(a, "ada", "bob")
    key = await insert_key(a, "backend")
    on_a = await connect_chat(a, tokens["ada"], "ada")
    on_b = [await connect_chat(b, tokens["ada"], "ada") for _ in range(2)]
    bob = await connect_chat(b, tokens["bob"], "bob")
    try:
        reply = await api(a, key, "users_disconnect", {"user": "ada"})
        assert reply.json == {"user": "ada", "connections": 1}  # this node's
        for client in (on_a, *on_b):
            await asyncio.wait_for(client.ws.wait_closed(), TIMEOUT_S)
            assert (client.ws.close_code, client.ws.close_reason) == (
                1000,
                "disconnected by the application",
            )
        assert not bob.done  # someone else's connection stays
        again = await connect_chat(b, await login(b.port, "ada"), "ada")  # no ban
        await close_quietly(again)
        nobody = await api(b, key, "users_disconnect", {"user": "ada"})
        assert nobody.json == {"user": "ada", "connections": 0}
    finally:
        await close_quietly(on_a, *on_b, bob)


def record_heads(node: Server) -> list[Heads]:
    """Every heartbeat ``node`` sends from now on, as it went out on the real bus."""
    bus = chat_handler(node).feed.bus
    real_publish = bus.publish
    seen: list[Heads] = []

    def publish(data: bytes) -> None:
        event = decode_event(data)
        if isinstance(event, Heads):
            seen.append(event)
        real_publish(data)

    bus.publish = publish  # type: ignore[method-assign]
    return seen


async def say_and_see(
    sender: ChatClient, reader: ChatClient, room: str, text: str
) -> int:
    start = len(reader.frames)
    await sender.say(room, text, ref=text)
    frame = await reader.wait_frame("message", start=start, room=room, text=text)
    return int(frame["id"])


async def test_rooms_delete_reaches_the_other_node_and_a_new_room_of_the_name_starts_at_one(
    start_server: StartServer, postgres_url: str, redis_server: RedisServer
) -> None:
    a, b = await two_nodes(start_server, postgres_url, redis_server)
    tokens = await new_users(a, "ada", "bob")
    key = await insert_key(a, "backend")
    ada = await connect_chat(b, tokens["ada"], "ada")
    bob = await connect_chat(a, tokens["bob"], "bob")
    try:
        made = await api(a, key, "rooms_create", {"room": "lobby", "kind": "public"})
        assert made.status == 200, made.body
        await ada.join("lobby")
        await bob.join("lobby")
        present = await api(a, key, "presence", {"room": "lobby"})
        assert present.json == {"room": "lobby", "users": ["ada", "bob"]}
        for i in range(5):  # node b's heartbeat now names lobby's newest id
            await say_and_see(ada, bob, "lobby", f"old{i}")
        await asyncio.sleep(0.5)

        beats = record_heads(b)
        await wait_for_condition(lambda: beats and "lobby" in beats[-1].newest)
        gone = await api(a, key, "rooms_delete", {"room": "lobby"})
        assert gone.json == {"room": "lobby", "deleted": True}
        for client in (ada, bob):
            frame = await client.wait_frame("removed", room="lobby")
            assert (frame["reason"], frame["by"]) == ("deleted", "backend")
        # Node b wrote the old room's ids; once the deletion reached it (ada, on b, was
        # told), its heartbeat names the room no more: a stale head would have every
        # node's new sequencer of the name read the store for ids that are not there.
        seen = len(beats)
        await asyncio.sleep(0.5)  # heartbeats of both nodes come and go meanwhile
        assert len(beats) > seen
        assert all("lobby" not in beat.newest for beat in beats[seen:])

        await api(a, key, "rooms_create", {"room": "lobby", "kind": "public"})
        # No node still names the old room's newest id in its heartbeat (``forget_room``):
        # a stale head would send the new room's sequencers reading gaps that are not there.
        fetched = [chat_handler(node).feed.fetched for node in (a, b)]
        start_ada, start_bob = len(ada.frames), len(bob.frames)
        assert (await ada.join("lobby"))["last_id"] == 1
        assert (await bob.join("lobby"))["last_id"] == 2
        ids = [await say_and_see(bob, ada, "lobby", "new0")]
        ids.append(await say_and_see(ada, bob, "lobby", "new1"))
        assert ids == [3, 4]
        await asyncio.sleep(0.5)  # nothing held or repeated after a few heartbeats
        assert ada.entry_ids("lobby", start_ada) == [2, 3, 4]
        assert bob.entry_ids("lobby", start_bob) == [3, 4]
        assert [chat_handler(node).feed.fetched for node in (a, b)] == fetched
        history = await api(b, key, "history", {"room": "lobby", "limit": 2})
        assert [m["id"] for m in history.json["messages"]] == [3, 4]
        older = await api(b, key, "history", {"room": "lobby", "before": 3})
        assert [(m["id"], m["event"]) for m in older.json["messages"]] == [
            (1, "joined"),
            (2, "joined"),
        ]
    finally:
        await close_quietly(ada, bob)
