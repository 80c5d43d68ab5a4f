"""deploy/nginx.conf, run by a real nginx in front of two real `rawws serve` nodes on one PostgreSQL.

A chat goes through the proxy as a browser's would: register, login, ticket,
join, say, receive: on one node, and across the two through the bus (real
Redis), and across a rolling restart (SIGTERM: drain, 1001, the client comes
back through nginx on the other node and resumes with `since`). Where each
connection landed is checked on the nodes themselves (`/healthz`).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from tests.support.chat_client import ChatClient, close_quietly
from tests.support.helpers import http, register, registered_token, ticket
from tests.support.nginx import Nginx, nginx
from tests.support.nodes import Node, start_node
from tests.support.redis_server import RedisServer

__all__ = ["nginx"]  # the fixture, imported to be found

JWT_SECRET = "a-secret-the-two-nodes-share-0123456789"  # tokens from one node are good on the other
TIMEOUT_S = 10.0


async def start_nodes(
    base: Path, db_url: str, count: int, *extra: str, metrics: bool = False
) -> list[Node]:
    nodes = []
    for n in range(count):
        nodes.append(
            await start_node(
                base / f"node{n}",
                "--db",
                db_url,
                "--forwarded-allow-ips",
                "127.0.0.1",
                "--drain-delay",
                "1",
                *extra,
                env={"RAWWS_JWT_SECRET": JWT_SECRET},
                metrics=metrics,
            )
        )
    return nodes


@pytest.fixture
async def stop_after() -> AsyncIterator[list[Node]]:
    nodes: list[Node] = []
    yield nodes
    for node in nodes:
        await node.stop(signal.SIGKILL)


async def open_websockets(node: Node) -> int:
    reply = await http(node.port, "GET", "/healthz")
    return int(reply.json["websockets"])


async def chat_via(
    proxy_port: int, token: str, user: str, **headers: str
) -> ChatClient:
    """A /ws connection through the proxy, with a fresh ticket bought through the proxy."""
    reply = await ticket(proxy_port, token)
    assert reply.status == 200, reply.body
    ws = await connect(
        f"ws://127.0.0.1:{proxy_port}/ws?ticket={reply.json['ticket']}",
        origin=f"http://127.0.0.1:{proxy_port}",  # the page's own origin, as nginx passes the Host on
        additional_headers=headers,
        subprotocols=["rawws.v1"],
        proxy=None,
        open_timeout=TIMEOUT_S,
        ping_interval=None,
    )
    client = ChatClient(ws, user)
    await client.wait_frame("welcome")
    return client


async def client_on(
    nodes: list[Node], wanted: Node | None, proxy_port: int, token: str, user: str
) -> tuple[ChatClient, Node]:
    """Connect through the proxy until the connection lands on ``wanted`` (any node when ``None``): where it did."""
    for _ in range(6):
        before = [await open_websockets(node) for node in nodes]
        client = await chat_via(proxy_port, token, user)
        after = [await open_websockets(node) for node in nodes]
        landed = [
            node
            for node, was, now in zip(nodes, before, after, strict=True)
            if now > was
        ]
        if len(landed) == 1 and wanted in (None, landed[0]):
            return client, landed[0]
        await client.close()
        await http(
            proxy_port, "GET", "/healthz"
        )  # one more request: round-robin's next turn is the other node
    raise AssertionError(
        f"round-robin never put {user} on node {wanted.port if wanted else '?'}"
    )


async def test_chat_through_nginx_on_two_nodes(
    nginx: Nginx, postgres_url: str, tmp_path: Path, stop_after: list[Node]
) -> None:
    nodes = await start_nodes(tmp_path, postgres_url, 2)
    stop_after.extend(nodes)
    port = await nginx.start([node.port for node in nodes])
    ada = await registered_token(port, "ada")
    bob = await registered_token(port, "bob")
    assert (await register(port, "ada")).status == 409  # one database behind both nodes
    alice, home = await client_on(nodes, None, port, ada, "ada")
    bobby, _ = await client_on(nodes, home, port, bob, "bob")
    try:
        await alice.join("lobby")
        await bobby.join("lobby")
        await alice.say("lobby", "hello through nginx", ref="r1")
        ack = await alice.wait_ack("r1")
        await bobby.wait_message_id("lobby", ack["id"])
        got = bobby.messages("lobby")
        assert [(m["id"], m["user"], m["text"]) for m in got] == [
            (ack["id"], "ada", "hello through nginx")
        ]
    finally:
        await close_quietly(alice, bobby)
    # The node saw the client nginx forwarded (X-Forwarded-For: an address without the proxy's port).
    await asyncio.sleep(0.2)
    assert "ws open peer=127.0.0.1 path=/ws user=ada" in home.log(), home.log()


async def test_nginx_drops_a_clients_own_forwarded_header(
    nginx: Nginx, postgres_url: str, tmp_path: Path, stop_after: list[Node]
) -> None:
    nodes = await start_nodes(tmp_path, postgres_url, 1)
    stop_after.extend(nodes)
    port = await nginx.start([nodes[0].port])
    token = await registered_token(port, "ada")
    client = await chat_via(
        port, token, "ada", Forwarded="for=198.51.100.99;proto=https"
    )
    await client.close()
    await asyncio.sleep(0.2)
    log = nodes[0].log()
    assert "198.51.100.99" not in log and "ws open peer=127.0.0.1 " in log, log


async def test_readyz_and_healthz_through_nginx(
    nginx: Nginx, postgres_url: str, tmp_path: Path, stop_after: list[Node]
) -> None:
    nodes = await start_nodes(tmp_path, postgres_url, 2)
    stop_after.extend(nodes)
    port = await nginx.start([node.port for node in nodes])
    for _ in range(4):  # both nodes, in turn
        assert (await http(port, "GET", "/readyz")).json["status"] == "ready"
    assert (await http(port, "GET", "/metrics")).status == 404


async def bus_samples(node: Node) -> dict[str, float]:
    assert node.metrics_port is not None
    reply = await http(node.metrics_port, "GET", "/metrics")
    assert reply.status == 200
    families = text_string_to_metric_families(reply.body.decode())
    return {
        s.name: s.value
        for family in families
        for s in family.samples
        if s.name.startswith("rawws_bus_")
    }


# -- across nodes, through the Redis bus -------------------------------------------------------------


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


async def test_chat_across_two_nodes_through_nginx(
    nginx: Nginx,
    postgres_url: str,
    redis_url: str,
    tmp_path: Path,
    stop_after: list[Node],
) -> None:
    nodes = await start_nodes(
        tmp_path, postgres_url, 2, "--bus", redis_url, metrics=True
    )
    stop_after.extend(nodes)
    port = await nginx.start([node.port for node in nodes])
    ada = await registered_token(port, "ada")
    bob = await registered_token(port, "bob")
    alice, _ = await client_on(nodes, nodes[0], port, ada, "ada")
    bobby, _ = await client_on(nodes, nodes[1], port, bob, "bob")
    try:
        await alice.join("lobby")
        await bobby.join("lobby")
        # bob's first join is stored as the lobby's next id: alice, a member already, gets it
        # from the other node as a `member` frame
        await alice.wait_frame("member", room="lobby", event="joined", user="bob")
        ids = await alice.flood(
            "lobby", 15, prefix="x"
        )  # within the per-connection burst
        await bobby.wait_message_id("lobby", ids[-1])
        assert (
            bobby.message_ids("lobby") == ids
        )  # every one, once, in order, from the other node
    finally:
        await close_quietly(alice, bobby)
    # The bus families count what crossed, stored events as well as messages: alice's node
    # published her `joined` and the 15 messages, and bob's received all 16; bob's node
    # published his `joined`, and alice's received it.
    sender, receiver = [await bus_samples(node) for node in nodes]
    joined = (
        1  # each one's first join of the lobby: one event, on the bus from their node
    )
    assert (
        sender["rawws_bus_published_messages_total"] == joined + 15
        and receiver["rawws_bus_received_messages_total"] == joined + 15
    )
    assert (
        receiver["rawws_bus_published_messages_total"] == joined
        and sender["rawws_bus_received_messages_total"] == joined
    )
    assert sender["rawws_bus_connected"] == receiver["rawws_bus_connected"] == 1


async def test_rolling_restart_through_nginx_loses_no_message(
    nginx: Nginx,
    postgres_url: str,
    redis_url: str,
    tmp_path: Path,
    stop_after: list[Node],
) -> None:
    nodes = await start_nodes(tmp_path, postgres_url, 2, "--bus", redis_url)
    stop_after.extend(nodes)
    port = await nginx.start([node.port for node in nodes])
    ada = await registered_token(port, "ada")
    bob = await registered_token(port, "bob")
    alice, _ = await client_on(nodes, nodes[0], port, ada, "ada")
    bobby, _ = await client_on(nodes, nodes[1], port, bob, "bob")
    try:
        await alice.join("lobby")
        await bobby.join("lobby")
        first = await bobby.flood("lobby", 10, prefix="a")
        await alice.wait_message_id("lobby", first[-1])
        nodes[0].process.send_signal(signal.SIGTERM)  # alice's node: drain, then 1001
        await alice.wait_closed(timeout=15)
        assert alice.close_code == 1001
        during = await bobby.flood("lobby", 10, prefix="b")  # said while alice is away
        seen = alice.message_ids("lobby")
        back = await chat_via(port, ada, "ada")  # nginx sends her to the node still up
        await back.join("lobby", since=seen[-1])
        await back.wait_message_id("lobby", during[-1])
        assert (
            seen + back.message_ids("lobby") == first + during
        )  # none lost, none twice
        await close_quietly(back)
    finally:
        await close_quietly(alice, bobby)
