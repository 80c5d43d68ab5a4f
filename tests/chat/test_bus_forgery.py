"""Nobody can forge the bus: real nodes on PostgreSQL and a real ``redis-server`` with a password,
and a forger who knows that password (the worst case: Redis itself is shared, or its password
leaked) publishing with redis-py straight onto the channel.

Every forged event — a message as another user, a user added to ``who`` by a presence event or by a
heartbeat — is refused and counted on every node: 0 delivered to any member, ``who`` unchanged, and
the real message with the forged id is delivered live. A real event recorded off the channel and
played again is refused too (``rawws.bus.seal``: its sequence number).
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import redis.asyncio as aioredis

from rawws.bus.redis import CHANNEL, RedisBus
from rawws.bus.seal import HEADER, TAG_BYTES
from rawws.chat.service import ChatHandler
from rawws.server.server import Server
from tests.support.chat_client import ChatClient, close_quietly, connect_chat, new_user
from tests.support.metrics import Samples, scrape, value
from tests.support.redis_server import RedisServer

SECRET = "bus-forgery-test-secret-" + "x" * 32
FORGED_MESSAGES = 50  # as "alice", ids 1..50 of the room


@pytest.fixture
def start_node(start_server, postgres_url: str, redis_server: RedisServer):
    async def start(**settings: object) -> Server:
        defaults: dict[str, object] = {
            "db_url": postgres_url,
            "bus_url": redis_server.url,
            "jwt_secret": SECRET,
            "bus_heartbeat_s": 0.2,
        }
        return await start_server(**{**defaults, **settings})

    return start


def bus(server: Server) -> RedisBus:
    chat = server.endpoints["/ws"].handler
    assert isinstance(chat, ChatHandler)
    assert isinstance(chat.feed.bus, RedisBus)
    return chat.feed.bus


async def member(node: Server, name: str, room: str = "lobby") -> ChatClient:
    client = await connect_chat(node, await new_user(node.port, name), name)
    await client.join(room)
    return client


async def who(client: ChatClient, room: str = "lobby") -> list[str]:
    start = len(client.frames)
    await client.send(type="who", room=room)
    frame = await client.wait_frame("members", start=start, room=room)
    return list(frame["users"])


def refused(samples: Samples) -> dict[str, float]:
    """``rawws_bus_refused_events_total`` by reason, as scraped."""
    return {
        reason: value(samples, "rawws_bus_refused_events_total", reason=reason)
        for reason in ("forged", "stale")
    }


def forged_events() -> list[bytes]:
    """What a forger who read ``rawws.chat.codec`` publishes."""
    events = [
        {
            "v": 1,
            "k": "m",
            "n": "evil",
            "r": "lobby",
            "i": i,
            "u": "alice",
            "t": f"forged {i}",
            "s": 1.0,
        }
        for i in range(1, FORGED_MESSAGES + 1)
    ]
    events.append(
        {"v": 1, "k": "p", "n": "evil", "r": "lobby", "u": "mallory", "j": True}
    )
    events.append(
        {"v": 1, "k": "h", "n": "evil2", "h": {"lobby": 1}, "p": {"lobby": ["eve"]}}
    )
    return [json.dumps(e).encode() for e in events]


async def test_forged_events_are_refused_and_never_delivered(
    start_node, redis_server: RedisServer
) -> None:
    a, b = await start_node(metrics_port=0), await start_node()
    alice, bob = await member(a, "alice"), await member(b, "bob")
    forger = aioredis.Redis.from_url(redis_server.url)
    try:
        await asyncio.sleep(0.5)  # heartbeats: each node knows the other's members
        before = {c.user: await who(c) for c in (alice, bob)}
        assert before == {"alice": ["alice", "bob"], "bob": ["alice", "bob"]}
        forged = forged_events()
        # the forged events come first, a sealed-looking one without the key last
        forged.append(b"rwb1" + bytes(HEADER.size - 4 + TAG_BYTES) + forged[0])
        for event in forged:
            await forger.publish(CHANNEL, event)
        await forger.publish(
            CHANNEL, b"end"
        )  # the channel is in order: when this is refused,
        for node in (a, b):  # every forged event before it was judged
            await wait_for(lambda node=node: bus(node).forged == len(forged) + 1)
        await alice.say("lobby", "the real one", ref="r1")
        real = (await alice.wait_ack("r1"))["id"]
        for client in (alice, bob):
            await client.wait_message_id("lobby", real)
        for client in (alice, bob):
            texts = [(m["id"], m["user"], m["text"]) for m in client.messages("lobby")]
            delivered = [t for t in texts if t[2].startswith("forged")]
            assert delivered == [], (
                f"{client.user}: {len(delivered)} of {FORGED_MESSAGES} forged messages delivered"
            )
            assert texts == [(real, "alice", "the real one")]
            assert client.of_type("presence", user="mallory") == []
            assert client.of_type("presence", user="eve") == []
            assert await who(client) == ["alice", "bob"]
        for node in (a, b):
            assert (bus(node).forged, bus(node).stale) == (len(forged) + 1, 0)
        _, samples = await scrape(a.metrics_port or 0)  # and an operator sees them
        assert refused(samples) == {"forged": len(forged) + 1, "stale": 0}
    finally:
        await forger.aclose()
        await close_quietly(alice, bob)


async def test_a_recorded_event_played_again_is_refused(
    start_node, redis_server: RedisServer
) -> None:
    """Bob joins and leaves on B; his recorded ``joined`` played again does not bring him back on A.

    Heartbeats are slow here, so nothing but the seal could correct a replay within the test.
    """
    slow = {"bus_heartbeat_s": 30.0, "presence_ttl_s": 120.0}
    a, b = await start_node(metrics_port=0, **slow), await start_node(**slow)
    recorder = aioredis.Redis.from_url(redis_server.url)
    pubsub = recorder.pubsub()
    await pubsub.subscribe(CHANNEL)
    alice = await member(a, "alice")
    bob = await member(b, "bob")
    try:
        await alice.wait_frame("presence", user="bob", event="joined")
        await bob.say("lobby", "hello", ref="h")
        hello = (await bob.wait_ack("h"))["id"]
        await alice.wait_message_id("lobby", hello)
        await bob.close()
        await alice.wait_frame("presence", user="bob", event="left")
        recorded: list[bytes] = []
        while (message := await pubsub.get_message(timeout=0.5)) is not None:
            if message["type"] == "message":
                recorded.append(message["data"])
        joined = [
            e
            for e in recorded
            if json.loads(e[HEADER.size + TAG_BYTES :]) | {"n": ""}
            == {"v": 1, "k": "p", "n": "", "r": "lobby", "u": "bob", "j": True}
        ]
        assert len(joined) == 1, "bob's presence event, as sealed by B"
        stale_before = bus(a).stale
        await recorder.publish(CHANNEL, joined[0])  # bob is back?
        await wait_for(lambda: bus(a).stale == stale_before + 1)
        assert await who(alice) == ["alice"]
        for event in recorded:  # everything, the message too
            await recorder.publish(CHANNEL, event)
        await wait_for(lambda: bus(a).stale == stale_before + 1 + len(recorded))
        assert await who(alice) == ["alice"]
        assert alice.of_type("presence", user="bob", event="joined")[1:] == []
        assert alice.message_ids("lobby") == [hello]
        assert bus(a).forged == 0
        _, samples = await scrape(a.metrics_port or 0)
        assert refused(samples) == {
            "forged": 0,
            "stale": stale_before + 1 + len(recorded),
        }
    finally:
        await pubsub.aclose()
        await recorder.aclose()
        await close_quietly(alice, bob)


async def wait_for(condition, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_nodes_with_different_secrets_refuse_each_other_and_say_why(
    start_node, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rawws.bus")
    a, b = await start_node(), await start_node(jwt_secret="another-secret-" + "y" * 32)
    alice = await member(a, "alice")
    try:
        await alice.say("lobby", "hello", ref="h")
        await alice.wait_ack("h")
        await wait_for(lambda: bus(b).forged > 0)
        logged = [
            r.getMessage()
            for r in caplog.records
            if "refused a bus event" in r.getMessage()
        ]
        assert logged and "do not share one JWT secret" in logged[0]
    finally:
        await close_quietly(alice)


async def test_a_unix_socket_bus_with_its_password_as_a_parameter(
    start_node, redis_server: RedisServer
) -> None:
    """docs/cluster.md's ``unix:///…/redis.sock?password=…&db=0``: two nodes chat through it."""
    a = await start_node(bus_url=redis_server.unix_url)
    b = await start_node(bus_url=redis_server.unix_url)
    alice, bob = await member(a, "alice"), await member(b, "bob")
    try:
        await alice.say("lobby", "over the socket", ref="s")
        await bob.wait_message_id("lobby", (await alice.wait_ack("s"))["id"])
        assert [m["text"] for m in bob.messages("lobby")] == ["over the socket"]
    finally:
        await close_quietly(alice, bob)
