"""`/readyz` follows the database and the drain; `/healthz` stays plain liveness."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from websockets.asyncio.client import connect

from tests.conftest import StartServer
from tests.support.helpers import Reply, http
from tests.support.nodes import start_node
from tests.support.postgres import PostgresCluster, start_cluster, stop_cluster

WAIT_S = 20.0


async def wait_for_readyz(port: int, status: int, timeout: float = WAIT_S) -> Reply:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        reply = await http(port, "GET", "/readyz")
        if reply.status == status:
            return reply
        assert loop.time() < deadline, (
            f"/readyz still {reply.status} {reply.body!r} after {timeout}s"
        )
        await asyncio.sleep(0.1)


async def test_ready_with_sqlite(start_server: StartServer) -> None:
    server = await start_server()
    reply = await http(server.port, "GET", "/readyz")
    assert reply.status == 200 and reply.json == {
        "status": "ready",
        "checked": ["store"],
    }
    assert (await http(server.port, "GET", "/healthz")).status == 200


async def test_readyz_follows_postgresql_down_and_up(
    start_server: StartServer, postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    server = await start_server(db_url=postgres_url, readiness_timeout_s=1.0)
    assert (await http(server.port, "GET", "/readyz")).status == 200
    stop_cluster(postgres_cluster)
    try:
        down = await wait_for_readyz(server.port, 503)
        assert down.json["status"] == "unavailable"
        assert set(down.json["reason"]) == {"store"}
        assert (
            postgres_url not in down.body.decode()
        )  # no URL, host or user in the answer
        # Liveness does not follow the database: the process still answers.
        assert (await http(server.port, "GET", "/healthz")).status == 200
    finally:
        start_cluster(postgres_cluster)
    up = await wait_for_readyz(server.port, 200)
    assert up.json["status"] == "ready"


async def test_sigterm_drains_readyz_first_then_closes_websockets_with_1001(
    tmp_path: Path,
) -> None:
    node = await start_node(tmp_path, "--echo", "--drain-delay", "2")
    try:
        assert (await http(node.port, "GET", "/readyz")).status == 200
        ws = await connect(
            f"ws://127.0.0.1:{node.port}/echo", proxy=None, compression=None
        )
        node.process.send_signal(signal.SIGTERM)
        draining = await wait_for_readyz(node.port, 503, timeout=5)
        assert draining.json["status"] == "draining"
        # Still serving while draining: the open connection works and has not been told to go.
        await ws.send("still here")
        assert await asyncio.wait_for(ws.recv(), 5) == "still here"
        assert ws.close_code is None
        await asyncio.wait_for(ws.wait_closed(), 10)
        assert ws.close_code == 1001
        assert await asyncio.wait_for(node.process.wait(), 15) == 0
        log = node.log()
        assert log.index("draining") < log.index("shutting down"), log
    finally:
        await node.stop(signal.SIGKILL)
