"""`/readyz` follows the database and the drain; `/healthz` stays plain liveness."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from rawws.store.sql import SQLITE_FILE
from tests.conftest import StartServer
from tests.support.chat_client import close_quietly, connect_chat, new_user
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


async def test_the_metrics_listeners_readyz_runs_the_same_checks(
    start_server: StartServer, postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    """The metrics port's /readyz is the node's: PostgreSQL stopped, it answers 503 too (it said 200, checking nothing)."""
    server = await start_server(
        db_url=postgres_url, readiness_timeout_s=1.0, metrics_port=0
    )
    metrics_port = server.metrics_port or 0
    ready = await http(metrics_port, "GET", "/readyz")
    assert ready.status == 200 and ready.json["checked"] == ["store"]
    stop_cluster(postgres_cluster)
    try:
        down = await wait_for_readyz(metrics_port, 503)
        assert set(down.json["reason"]) == {"store"}
        assert postgres_url not in down.body.decode()
        assert (await http(metrics_port, "GET", "/healthz")).status == 200
    finally:
        start_cluster(postgres_cluster)
    await wait_for_readyz(metrics_port, 200)


# -- writes that fail while reads work (a full disk) ----------------------------------------


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """``chattr +i``: even root cannot write the files (a full disk's effect on SQLite: reads work, writes fail).

    The ``-shm`` file is left alone: SQLite maps it, and an immutable mapping kills the process with SIGBUS.
    """
    chattr = shutil.which("chattr")
    if chattr is None:
        _unavailable("no chattr on PATH")
    try:
        subprocess.run(
            [chattr, "+i", *map(str, paths)], check=True, capture_output=True
        )
    except subprocess.CalledProcessError as exc:
        subprocess.run([chattr, "-i", *map(str, paths)], capture_output=True)
        _unavailable(f"chattr +i refused: {exc.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", *map(str, paths)], check=True)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"making a file immutable is required in CI: {reason}")
    pytest.skip(reason)


def sqlite_files(server_data_dir: str) -> tuple[Path, Path]:
    database = Path(server_data_dir) / SQLITE_FILE
    return database, database.with_name(database.name + "-wal")


async def test_a_failing_write_makes_the_node_not_ready_until_writes_work(
    start_server: StartServer,
) -> None:
    """SELECT 1 works on a full disk: a failed write must make /readyz 503 on both listeners, a write probe end it."""
    server = await start_server(metrics_port=0, readiness_timeout_s=2.0)
    await new_user(
        server.port, "ada"
    )  # the -wal file exists once something was written
    ports = (server.port, server.metrics_port or 0)
    with immutable(*sqlite_files(server.config.data_dir)):
        for port in ports:
            assert (await http(port, "GET", "/readyz")).status == 200
        refused = await http(
            server.port,
            "POST",
            "/auth/register",
            {"username": "bob", "password": "correct horse battery"},
        )
        assert refused.status == 503
        for port in ports:
            down = await http(port, "GET", "/readyz")
            assert down.status == 503, down.body
            assert "register" in down.json["reason"]["store"]
        # Probes write during the outage: while the files stay read-only it goes on.
        await asyncio.sleep(0.5)
        assert (await http(server.port, "GET", "/readyz")).status == 503
    await wait_for_readyz(server.port, 200)
    assert (await http(server.metrics_port or 0, "GET", "/readyz")).status == 200


async def test_a_flapping_store_logs_one_start_and_one_end(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Writes failing while reads succeed, over and over: one outage, not a start and an end per failure."""
    server = await start_server(readiness_timeout_s=2.0)
    token = await new_user(server.port, "ada")
    ada = await connect_chat(server, token, "ada")
    # ada's first join of the lobby stores her membership (a write): made before the outage,
    # so that reading its history during it is a read only
    await ada.join("lobby")
    caplog.set_level(logging.INFO, logger="rawws.store")
    try:
        with immutable(*sqlite_files(server.config.data_dir)):
            for n in range(20):
                reply = await http(
                    server.port,
                    "POST",
                    "/auth/register",
                    {"username": f"user{n}", "password": "correct horse battery"},
                )
                assert reply.status == 503  # a write: refused
                if n % 2 == 0:  # within the chat's frame rate
                    start = len(ada.frames)
                    await ada.send(type="history", room="lobby")
                    await ada.wait_frame("history", start=start)  # a read: answered
        await wait_for_readyz(server.port, 200)
    finally:
        await close_quietly(ada)
    lines = [r.getMessage() for r in caplog.records if r.name == "rawws.store"]
    assert len(lines) == 2, lines
    assert "unavailable" in lines[0]
    assert "available again" in lines[1] and "20 operation(s) refused" in lines[1]


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
