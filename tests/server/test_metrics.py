"""`/metrics` on its own listener, scraped and parsed as Prometheus does: the counters move with real traffic."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from pathlib import Path

from websockets.asyncio.client import connect

from rawws.core.closecodes import OTHER_LABEL, CloseCode
from rawws.server.server import Server
from testkit import free_port
from tests.conftest import StartServer
from tests.support.chat_client import close_quietly, connect_chat, login, new_user
from tests.support.helpers import (
    close_code,
    http,
    random_key,
    read_frame,
    read_http_head,
    read_until_eof,
    upgrade_request,
    wait_for_condition,
)
from tests.support.metrics import scrape, value
from tests.support.nodes import start_node
from tests.support.redis_server import RedisServer


async def metrics_server(start_server: StartServer) -> Server:
    server = await start_server(metrics_port=0)
    assert server.metrics_port is not None and server.metrics_port != server.port
    return server


async def test_metrics_are_off_by_default_and_not_on_the_public_port(
    start_server: StartServer,
) -> None:
    server = await start_server()
    assert server.metrics_port is None
    assert (await http(server.port, "GET", "/metrics")).status == 404
    with_metrics = await metrics_server(start_server)
    assert (await http(with_metrics.port, "GET", "/metrics")).status == 404


async def test_echo_traffic_moves_message_byte_handshake_and_close_counters(
    start_server: StartServer,
) -> None:
    server = await metrics_server(start_server)
    _, before = await scrape(server.metrics_port or 0)
    assert value(before, "rawws_websocket_connections", endpoint="/echo") == 0
    ws = await connect(
        f"ws://127.0.0.1:{server.port}/echo", compression=None, proxy=None
    )
    for n in range(25):
        await ws.send(f"hello {n}")
        assert await ws.recv() == f"hello {n}"
    _, during = await scrape(server.metrics_port or 0)
    assert value(during, "rawws_websocket_connections", endpoint="/echo") == 1
    await ws.close()
    await wait_for_condition(
        lambda: not server.connections, what="the echo session to end"
    )
    text, after = await scrape(server.metrics_port or 0)
    assert (
        value(after, "rawws_messages_received_total")
        - value(before, "rawws_messages_received_total")
        == 25
    )
    assert (
        value(after, "rawws_messages_sent_total")
        - value(before, "rawws_messages_sent_total")
        == 25
    )
    # 25 masked frames of 7-8 bytes plus 6 bytes of header each, and a close frame
    received = value(after, "rawws_received_bytes_total")
    assert 25 * (6 + 7) <= received <= 25 * (6 + 8) + 8
    assert value(after, "rawws_sent_bytes_total") >= 25 * (2 + 7)
    assert value(after, "rawws_handshakes_total", status="101") == 1
    assert value(after, "rawws_websocket_closes_total", code="1000") == 1
    assert value(after, "rawws_websocket_connections", endpoint="/echo") == 0
    assert "# TYPE rawws_handshakes_total counter" in text
    assert "# TYPE rawws_websocket_connections gauge" in text
    assert value(after, "process_resident_memory_bytes") > 0


async def test_chat_traffic_moves_login_fanout_store_and_refusal_counters(
    start_server: StartServer,
) -> None:
    server = await metrics_server(start_server)
    port = server.port
    ada = await new_user(port, "ada")
    bob = await new_user(port, "bob")
    assert (
        await http(
            port, "POST", "/auth/login", {"username": "ada", "password": "wrong one!"}
        )
    ).status == 401
    # Refused upgrades: no credential (401), a foreign origin (403), a wrong version (426).
    for extra, expected in (
        ("", 401),
        ("Origin: http://evil.example\r\n", 403),
        ("", 426),
    ):
        version = "8" if expected == 426 else "13"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}\r\n{extra}"
                "Connection: close\r\n\r\n"
            ).encode()
        )
        data, _ = await read_until_eof(reader)
        writer.close()
        assert data.startswith(f"HTTP/1.1 {expected} ".encode()), data[:80]
    alice = await connect_chat(server, ada, "ada")
    bobby = await connect_chat(server, bob, "bob")
    try:
        await alice.join("lobby")
        await bobby.join("lobby")
        for n in range(10):
            await alice.say("lobby", f"m{n}", ref=f"r{n}")
        last = (await alice.wait_ack("r9"))["id"]  # after ada's and bob's joined events
        await bobby.wait_message_id("lobby", last)
        late = await connect_chat(server, await login(port, "bob"), "bob")
        await late.join("lobby", since=last - 6)
        await late.wait_message_id("lobby", last)
        await close_quietly(late)
    finally:
        await close_quietly(alice, bobby)
    _, samples = await scrape(server.metrics_port or 0)
    assert value(samples, "rawws_login_attempts_total", outcome="ok") == 3
    assert value(samples, "rawws_login_attempts_total", outcome="bad_credentials") == 1
    for status in ("401", "403", "426"):
        assert value(samples, "rawws_handshakes_total", status=status) == 1, status
    assert value(samples, "rawws_handshakes_total", status="101") == 3
    assert (
        value(samples, "rawws_fanout_deliveries_total") >= 20
    )  # 10 messages × 2 members (+ presence)
    assert value(samples, "rawws_catchups_total") == 1
    assert value(samples, "rawws_catchup_messages_total") == 6  # the last six messages
    commits = value(samples, "rawws_store_commit_seconds_count")
    assert 1 <= commits <= 10
    assert value(samples, "rawws_store_commit_batch_messages_sum") == 10
    assert value(samples, "rawws_store_commit_seconds_bucket", le="+Inf") == commits
    assert value(samples, "rawws_bus_connected") == 0
    assert ("rawws_bus_published_messages_total", ()) in samples


async def _close_with(port: int, code: int) -> int:
    """Open /echo on a raw socket, close with ``code`` (masked, as a client must); the code echoed back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(upgrade_request("/echo", key=random_key()))
        status, _, _ = await read_http_head(reader)
        assert status == 101
        mask = random.randbytes(4)
        payload = struct.pack("!H", code)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        writer.write(bytes([0x88, 0x80 | len(payload)]) + mask + masked)
        opcode, answer, _ = await read_frame(reader)
        assert opcode == 0x8
        return close_code(answer)
    finally:
        writer.close()


async def test_close_codes_a_client_picks_do_not_mint_metric_series(
    start_server: StartServer,
) -> None:
    """4,000 connections close with random codes valid on the wire: the series stay the known codes plus other."""
    server = await metrics_server(start_server)
    rng = random.Random(20)
    application_codes = list(range(3000, 5000))
    codes = [rng.choice(application_codes) for _ in range(3900)] + [1000] * 100
    rng.shuffle(codes)
    gate = asyncio.Semaphore(32)

    async def one(code: int) -> None:
        async with gate:
            assert await _close_with(server.port, code) == code

    await asyncio.gather(*(one(code) for code in codes))
    await wait_for_condition(lambda: not server.connections, what="every close")
    _, samples = await scrape(server.metrics_port or 0)
    labels = {
        dict(label_items)["code"]
        for (name, label_items) in samples
        if name == "rawws_websocket_closes_total"
    }
    known = {str(int(code)) for code in CloseCode}
    assert labels <= known | {OTHER_LABEL}
    assert len(labels) <= len(known) + 1
    assert value(samples, "rawws_websocket_closes_total", code="1000") == 100
    assert value(samples, "rawws_websocket_closes_total", code=OTHER_LABEL) == 3900


async def test_event_loop_lag_is_sampled(start_server: StartServer) -> None:
    server = await metrics_server(start_server)
    await asyncio.sleep(0.6)
    _, samples = await scrape(server.metrics_port or 0)
    assert value(samples, "rawws_event_loop_lag_seconds_count") >= 1


async def test_each_worker_serves_its_own_metrics_port(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    base = free_port()
    while not _free(base + 1):
        base = free_port()
    node = await start_node(
        tmp_path,
        "--workers",
        "2",
        "--bus",
        redis_server.url,
        "--metrics-port",
        str(base),
    )
    try:
        for port in (base, base + 1):
            await wait_for_condition(
                lambda port=port: _accepting(port), what=f"a listener on {port}"
            )
            _, samples = await scrape(port)
            assert value(samples, "process_resident_memory_bytes") > 0
            assert ("rawws_http_requests_total", ()) in samples
    finally:
        assert await node.stop() == 0


def _accepting(port: int) -> bool:
    """Something listens on ``port`` (bound is not enough: a server binds its ports first, listens once set up)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def test_every_rawws_metric_is_in_the_deploying_guide(
    start_server: StartServer,
) -> None:
    """An operator learns what a series means from docs/deploying.md: a metric it does not name is a gap."""
    server = await metrics_server(start_server)
    text, _samples = await scrape(server.metrics_port)  # type: ignore[arg-type]
    guide = (Path(__file__).parents[2] / "docs" / "deploying.md").read_text()
    families = {
        line.split()[2]
        for line in text.splitlines()
        if line.startswith("# TYPE rawws_")
    }
    assert families
    for family in sorted(families):
        kind = text.split(f"# TYPE {family} ", 1)[1].split()[0]
        counted = kind == "counter" and not family.endswith("_total")
        documented = f"{family}_total" if counted else family
        assert f"`{documented}`" in guide, documented
