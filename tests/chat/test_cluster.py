"""Several nodes, one chat: real servers on one PostgreSQL database and one real ``redis-server``.

Every claim is an exact id account: every member of a room gets every id of
the room from its join on, each once, in order, whichever node stored them and
whatever the bus lost: the ``joined`` events of those who joined after it (a
user's first join of a public room takes the room's next id), then the
messages, base+1..base+N once everyone has joined.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal

import pytest
import redis.asyncio as aioredis

from rawws.bus.redis import BusUnavailable, RedisBus
from rawws.chat.codec import Posted, decode_event
from rawws.chat.service import ChatHandler
from rawws.server.server import Server
from testkit import masked_frame
from tests.support.chat_client import ChatClient, close_quietly, connect_chat, new_user
from tests.support.chat_client import login as chat_login
from tests.support.helpers import (
    TIMEOUT_S,
    close_writer,
    login,
    open_raw,
    read_frame,
    read_http_head,
    register,
    registered_token,
    ticket,
    upgrade_request,
    wait_for_condition,
)
from tests.support.redis_server import RedisServer

SECRET = "cluster-test-secret-" + "x" * 32
WAIT_S = 30.0  # the longest a catch-up may take before the test fails


@pytest.fixture
def no_rate_limit() -> dict[str, object]:
    """Settings for floods: the per-connection frame limit made huge."""
    return {"chat_message_burst": 10**9, "chat_messages_per_s": 10.0**9}


@pytest.fixture
def start_node(
    start_server,
    postgres_url: str,
    redis_server: RedisServer,
    request: pytest.FixtureRequest,
):
    """A node on the shared PostgreSQL and Redis; without a frame limit when the test asks for ``no_rate_limit``."""
    unlimited = (
        request.getfixturevalue("no_rate_limit")
        if "no_rate_limit" in request.fixturenames
        else {}
    )

    async def start(**settings: object) -> Server:
        defaults: dict[str, object] = {
            "db_url": postgres_url,
            "bus_url": redis_server.url,
            "jwt_secret": SECRET,
            "bus_heartbeat_s": 0.2,
            "logins_per_minute_per_address": 100_000,
            "logins_per_minute_per_user": 100_000,
            **unlimited,
        }
        return await start_server(**{**defaults, **settings})

    return start


def assert_gapless(ids: list[int], first: int, last: int, who: str = "") -> None:
    expected = list(range(first, last + 1))
    assert ids == expected, (
        f"{who}: expected ids {first}..{last} once each, in order; got {len(ids)}"
        f" (duplicates: {len(ids) - len(set(ids))}, missing: {sorted(set(expected) - set(ids))[:10]})"
    )


async def try_upgrade(
    server: Server, target: str
) -> tuple[int, bytes, tuple[asyncio.StreamReader, asyncio.StreamWriter] | None]:
    """An upgrade request: the status, the body, and on a 101 the open connection."""
    reader, writer = await open_raw(server.port)
    writer.write(upgrade_request(target, host=f"127.0.0.1:{server.port}"))
    status, _, body = await read_http_head(reader, TIMEOUT_S)
    if status != 101:
        await close_writer(writer)
        return status, body, None
    return status, body, (reader, writer)


async def welcome_user(
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None,
) -> str:
    assert connection is not None
    reader, writer = connection
    _, payload, _ = await read_frame(reader, TIMEOUT_S)
    frame = json.loads(payload)
    assert frame["type"] == "welcome"
    writer.write(masked_frame(0x8, b"\x03\xe8"))
    await close_writer(writer)
    return str(frame["user"])


def handler(server: Server) -> ChatHandler:
    chat = server.endpoints["/ws"].handler
    assert isinstance(chat, ChatHandler)
    return chat


def bus(server: Server) -> RedisBus:
    found = handler(server).feed.bus
    assert isinstance(found, RedisBus)
    return found


async def members(
    nodes: list[Server], per_node: int, room: str = "lobby"
) -> list[tuple[Server, ChatClient]]:
    """``per_node`` users on each node, every one joined to ``room``."""
    clients: list[tuple[Server, ChatClient]] = []
    for n, node in enumerate(nodes):
        for i in range(per_node):
            name = f"u{n}x{i}"
            token = await new_user(node.port, name)
            client = await connect_chat(node, token, name, keep_messages=False)
            await client.join(room)
            clients.append((node, client))
    return clients


def joined_base(clients: list[tuple[Server, ChatClient]], room: str = "lobby") -> int:
    """The room's last id once all of ``clients`` joined it, one after another (``members``):
    each first join stored one ``joined`` event, so their answers' ``last_id`` run on by one,
    and what is said afterwards takes the ids after the last of them."""
    last_ids = [
        client.of_type("joined", room=room)[0]["last_id"] for _, client in clients
    ]
    assert last_ids == list(range(last_ids[0], last_ids[0] + len(last_ids))), last_ids
    return last_ids[-1]


def assert_account(
    clients: list[tuple[Server, ChatClient]], room: str, base: int, last: int
) -> None:
    """Every member got every id of ``room`` from its join on, once each, in order: the later
    joiners' ``joined`` events as ``member`` frames (base included), then messages base+1..last.
    (A client of ``members`` keeps its messages' ids, not their frames: as every event here
    comes before every message, the two lists tell the whole order.)"""
    users = [client.user for _, client in clients]
    for n, (node, client) in enumerate(clients):
        who = f"{client.user}@{node.port}"
        since = client.of_type("joined", room=room)[0]["last_id"]
        events = client.of_type("member", room=room)
        assert [(e["id"], e["event"], e["user"], e["by"]) for e in events] == [
            (since + 1 + k, "joined", user, user)
            for k, user in enumerate(users[n + 1 :])
        ], f"{who}: {events}"
        assert since + len(events) == base, who
        assert_gapless(client.ids[room], base + 1, last, who)


async def wait_all(
    clients: list[tuple[Server, ChatClient]], room: str, last: int
) -> None:
    await asyncio.gather(
        *(client.wait_message_id(room, last, timeout=WAIT_S) for _, client in clients)
    )


async def test_three_nodes_every_member_gets_every_message_once_in_order(
    start_node, no_rate_limit
) -> None:
    nodes = [await start_node() for _ in range(3)]
    clients = await members(nodes, 2)
    base = joined_base(clients)
    try:
        per_sender = 40
        senders = [
            client for _, client in clients
        ]  # everyone talks, on every node at once
        acked = await asyncio.gather(
            *(
                c.flood("lobby", per_sender, prefix=f"{c.user}-", window=8)
                for c in senders
            )
        )
        total = per_sender * len(senders)
        assert sorted(i for ids in acked for i in ids) == list(
            range(base + 1, base + total + 1)
        ), "the store gave the ids after the joins, base+1..base+N"
        await wait_all(clients, "lobby", base + total)
        assert_account(clients, "lobby", base, base + total)
        for node in nodes:
            assert handler(node).feed.garbage == 0
        # the others' messages came through the bus, not through the store
        assert sum(bus(node).received for node in nodes) >= total
    finally:
        await close_quietly(*(c for _, c in clients))


async def test_redis_killed_and_restarted_mid_traffic_loses_and_doubles_nothing(
    start_node,
    no_rate_limit,
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="rawws.bus")
    nodes = [await start_node() for _ in range(3)]
    clients = await members(nodes, 2)
    base = joined_base(clients)
    senders = [client for _, client in clients]
    per_sender = 120
    try:

        async def talk(client: ChatClient) -> list[int]:
            ids: list[int] = []
            for i in range(per_sender):
                ref = f"{client.user}-{i}"
                await client.say("lobby", f"{ref} text", ref=ref)
                ids.append((await client.wait_ack(ref, timeout=WAIT_S))["id"])
                await asyncio.sleep(0.01)
            return ids

        traffic = [asyncio.ensure_future(talk(c)) for c in senders]
        await asyncio.sleep(0.4)
        redis_server.kill()
        # while Redis is down every node keeps storing, acking and delivering to its own members
        down_acks = sum(len(c.acks) for c in senders)
        await asyncio.sleep(1.0)
        assert sum(len(c.acks) for c in senders) > down_acks, (
            "no message was acked while Redis was down"
        )
        assert not any(bus(node).connected for node in nodes)
        redis_server.start()
        acked = await asyncio.gather(*traffic)
        total = per_sender * len(senders)
        assert sorted(i for ids in acked for i in ids) == list(
            range(base + 1, base + total + 1)
        )
        await wait_all(clients, "lobby", base + total)
        assert_account(clients, "lobby", base, base + total)
        delivered = sum(len(c.ids["lobby"]) for _, c in clients)
        assert delivered == total * len(clients)
        downs = [r for r in caplog.records if "bus is down" in r.getMessage()]
        backs = [r for r in caplog.records if "bus is back" in r.getMessage()]
        assert len(downs) == len(nodes), [
            r.getMessage() for r in downs
        ]  # once per node, not per message
        assert len(backs) == len(nodes), [r.getMessage() for r in backs]
        assert all(bus(node).connected and bus(node).outages == 1 for node in nodes)
        print(
            f"\nredis restart: {total} acked, {delivered} deliveries to {len(clients)} members, 0 lost, 0 doubled;"
            f" dropped publishes {[bus(n).dropped for n in nodes]}, store reads {[handler(n).feed.fetched for n in nodes]}"
        )
    finally:
        await close_quietly(*senders)


async def test_a_lost_tail_in_a_quiet_room_is_found_by_the_heartbeat(
    start_node, no_rate_limit
) -> None:
    a, b = await start_node(), await start_node()
    clients = await members([a, b], 1)
    base = joined_base(clients)
    (_, on_a), (_, on_b) = clients
    try:
        await on_a.flood("lobby", 3, prefix="a-")
        await on_b.wait_message_id("lobby", base + 3)
        # the next publish of node A is lost on the way (as pub/sub may): nothing else is said
        lost: list[Posted] = []
        real_publish = bus(a).publish

        def lose_first_message(data: bytes) -> None:
            event = decode_event(data)
            if isinstance(event, Posted) and not lost:
                lost.append(event)  # heartbeats and presence still go out
            else:
                real_publish(data)

        bus(a).publish = lose_first_message  # type: ignore[method-assign]
        await on_a.flood("lobby", 1, prefix="late-")
        assert [event.message.id for event in lost] == [base + 4]
        await on_b.wait_message_id(
            "lobby", base + 4, timeout=WAIT_S
        )  # from the store, after A's heartbeat
        assert_account(clients, "lobby", base, base + 4)
        assert handler(b).feed.fetched >= 1
    finally:
        await close_quietly(on_a, on_b)


async def test_garbage_on_the_channel_is_refused_counted_logged_once_and_never_delivered(
    start_node, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rawws.bus")
    a, b = await start_node(), await start_node()
    clients = await members([a, b], 1)
    base = joined_base(clients)
    client = redis_server_client(redis_server)
    try:
        garbage = [
            b"\xff\xfe",
            b"not json",
            b"[]",
            b'{"v":1,"k":"m","n":"x","r":"lobby","i":"1","u":"u","t":"t","s":1}',
            b'{"v":1,"k":"m","n":"x","r":"lobby","i":1,"u":null,"t":"t","s":1}',
            b"{" * 10000,
        ]
        for data in garbage:
            await client.publish("rawws:events", data)
        await clients[0][1].flood("lobby", 2, prefix="ok-")
        await wait_all(clients, "lobby", base + 2)
        assert_account(clients, "lobby", base, base + 2)
        for node in (a, b):  # refused unopened (rawws.bus.seal): the chat never sees it
            assert (bus(node).forged, handler(node).feed.garbage) == (len(garbage), 0)
        logged = [r for r in caplog.records if "refused a bus event" in r.getMessage()]
        assert len(logged) == 2  # once per node
    finally:
        await client.aclose()
        await close_quietly(*(c for _, c in clients))


def redis_server_client(server: RedisServer) -> aioredis.Redis:
    return aioredis.Redis.from_url(server.url)


async def test_an_unreachable_bus_at_start_is_refused(
    start_server, postgres_url: str, redis_server: RedisServer
) -> None:
    redis_server.kill()
    with pytest.raises(BusUnavailable, match="cannot reach the bus"):
        await start_server(
            db_url=postgres_url, bus_url=redis_server.url, bus_timeout_s=0.2
        )


# -- state the nodes share ---------------------------------------------------------------


async def test_a_ticket_spent_on_one_node_is_refused_on_every_other(start_node) -> None:
    a, b, c = await start_node(), await start_node(), await start_node()
    token = await registered_token(a.port, "Ada")
    issued = (await ticket(a.port, token)).json["ticket"]
    status, _, connection = await try_upgrade(
        b, f"/ws?ticket={issued}"
    )  # spent on B (issued by A)
    assert status == 101
    assert await welcome_user(connection) == "Ada"
    for node in (a, c, b):
        status, body, _ = await try_upgrade(node, f"/ws?ticket={issued}")
        assert status == 401, (node.port, status, body)
        assert b"already used" in body
    # a fresh ticket still works anywhere
    fresh = (await ticket(c.port, token)).json["ticket"]
    status, _, connection = await try_upgrade(a, f"/ws?ticket={fresh}")
    assert status == 101
    assert (
        await welcome_user(connection) == "Ada"
    )  # a fresh ticket still works anywhere


async def test_a_ticket_is_refused_while_its_shared_record_is_unreachable(
    start_node, redis_server: RedisServer
) -> None:
    a = await start_node()
    token = await registered_token(a.port, "Ada")
    issued = (await ticket(a.port, token)).json["ticket"]
    redis_server.kill()
    status, body, _ = await try_upgrade(a, f"/ws?ticket={issued}")
    assert status == 503, body  # spent nowhere, or it could be spent once per node


async def test_login_attempts_are_counted_across_nodes(start_node) -> None:
    per_user = 4
    nodes = [await start_node(logins_per_minute_per_user=per_user) for _ in range(3)]
    assert (await register(nodes[0].port, "Ada", "right password here")).status == 201
    # The shared counts are token buckets (Redis's clock): no window's end to keep clear of.
    statuses = []
    for attempt in range(
        per_user * 2
    ):  # wrong passwords, spread over the nodes: at most 3 per node
        reply = await login(nodes[attempt % 3].port, "Ada", "wrong password!!")
        statuses.append(reply.status)
    # each node alone would allow all of them; the cluster allows per_user
    assert statuses == [401] * per_user + [429] * per_user, statuses


# -- presence across nodes ---------------------------------------------------------------


async def connect_as(node: Server, name: str) -> ChatClient:
    return await connect_chat(node, await new_user(node.port, name), name)


async def test_who_and_joined_list_users_on_every_node_and_presence_crosses_nodes(
    start_node,
) -> None:
    a, b = await start_node(), await start_node()
    ann = await connect_as(a, "ann")
    bob = await connect_as(b, "bob")
    try:
        await ann.join("lobby")
        await wait_for_condition(
            lambda: handler(b).presence.users("lobby") == ["ann"], what="ann seen on b"
        )
        joined = await bob.join("lobby")
        assert joined["users"] == ["ann", "bob"]  # ann is on the other node
        await ann.wait_frame("presence", room="lobby", user="bob", event="joined")
        start = len(ann.frames)
        await ann.send(type="who", room="lobby")
        assert (await ann.wait_frame("members", start=start, room="lobby"))[
            "users"
        ] == ["ann", "bob"]
        # a second tab of bob on the other node: nobody is told bob joined again
        bob2 = await connect_chat(a, await chat_login(a.port, "bob"), "bob")
        await bob2.join("lobby")
        await bob.send(type="leave", room="lobby")  # bob is still there through bob2
        await bob.wait_frame("left", room="lobby")
        await bob2.send(type="leave", room="lobby")
        await ann.wait_frame("presence", room="lobby", user="bob", event="left")
        await asyncio.sleep(
            0.6
        )  # three heartbeats: snapshots must not invent another joined/left
        about_bob = [
            f["event"] for f in ann.of_type("presence", room="lobby", user="bob")
        ]
        assert about_bob == ["joined", "left"], about_bob
        await close_quietly(bob2)
    finally:
        await close_quietly(ann, bob)


async def test_a_stalled_redis_does_not_stall_a_node(
    start_node,
    no_rate_limit,
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="rawws.bus")
    a, b = await start_node(), await start_node()
    clients = await members([a, b], 1)
    base = joined_base(clients)
    (_, on_a), (_, on_b) = clients
    assert redis_server.process is not None
    try:
        redis_server.process.send_signal(
            signal.SIGSTOP
        )  # connections stay open, nothing answers
        # node A goes on: stored, acked, delivered to its own member, while Redis hangs
        assert await on_a.flood("lobby", 5, prefix="stalled-", timeout=WAIT_S) == list(
            range(base + 1, base + 6)
        )
        await on_a.wait_message_id("lobby", base + 5)
        await wait_for_condition(
            lambda: not bus(a).connected and not bus(b).connected,
            timeout=WAIT_S,
            what="the stall noticed",
        )
        redis_server.process.send_signal(signal.SIGCONT)
        await wait_for_condition(
            lambda: bus(a).connected and bus(b).connected, timeout=WAIT_S, what="back"
        )
        await on_b.wait_message_id("lobby", base + 5, timeout=WAIT_S)
        assert_account(clients, "lobby", base, base + 5)
        assert len([r for r in caplog.records if "bus is down" in r.getMessage()]) == 2
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
        await close_quietly(on_a, on_b)
