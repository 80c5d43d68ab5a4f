"""docs/cluster.md from zero: its command block, run as written, gives three ready nodes.

The block is taken from the page and run by bash with only its port numbers moved to free ones (the
tests' PostgreSQL cluster and Redis port, three free node ports); ``PGHOST``/``PGPORT``/``PGUSER``
point PostgreSQL's client tools at the tests' throwaway cluster, and ``PATH`` starts with this
environment's ``bin``, where `rawws` is. Everything else — the Redis command, creating the role and
the database, the exports, the `rawws serve` lines — is the page's text. A mistake a newcomer would
hit there (a role never created, a database the role cannot create its schema in, a command not on
PATH) fails this test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from testkit import free_port
from tests.support.helpers import http
from tests.support.nodes import CHEAP_ARGON2_FLAGS, REPO_ROOT
from tests.support.postgres import PostgresCluster

PAGE = REPO_ROOT / "docs" / "cluster.md"
READY_TIMEOUT_S = 60.0


def command_block() -> str:
    """The first ```sh block after '## Commands'."""
    text = PAGE.read_text()
    section = text[text.index("## Commands") :]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "docs/cluster.md has a ```sh block under '## Commands'"
    return match.group(1)


def move_ports(block: str, ports: dict[int, int]) -> str:
    for documented, free in ports.items():
        assert re.search(rf"\b{documented}\b", block), (
            f"the block names port {documented}"
        )
        block = re.sub(rf"\b{documented}\b", str(free), block)
    return block


def redis_shutdown(port: int, password: str) -> None:
    with (
        contextlib.suppress(OSError),
        socket.create_connection(("127.0.0.1", port), timeout=2) as sock,
    ):
        sock.sendall(f"AUTH {password}\r\nSHUTDOWN NOSAVE\r\n".encode())
        sock.recv(64)


def psql(cluster: PostgresCluster, sql: str) -> None:
    env = {
        **os.environ,
        "PGHOST": cluster.host,
        "PGPORT": str(cluster.port),
        "PGUSER": cluster.user,
    }
    subprocess.run(
        ["psql", "-q", "-d", "postgres", "-c", sql],
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )


async def test_the_cluster_page_commands_give_three_ready_nodes(
    postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    for tool in ("redis-server", "psql", "createdb", "openssl"):
        if shutil.which(tool) is None:
            if os.environ.get("CI") == "true":
                pytest.fail(f"{tool} is required in CI")
            pytest.skip(f"{tool} not installed")
    redis_port, nodes = free_port(), [free_port() for _ in range(3)]
    block = move_ports(
        command_block(),
        {
            6379: redis_port,
            5432: postgres_cluster.port,
            8001: nodes[0],
            8002: nodes[1],
            8003: nodes[2],
        },
    )
    if (
        os.geteuid() != 0
    ):  # the page is written for root; elsewhere the tools run as this user
        block = block.replace("runuser -u postgres -- ", "")
    script = tmp_path / "cluster.sh"
    # the page's Redis password, for this test to stop that Redis afterwards
    script.write_text(
        "set -e\n"
        + block
        + '\nprintf %s "$REDIS_PASSWORD" > redis-password\njobs -p > pids\nwait\n'
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAWWS_")}
    env = {
        **clean,
        **CHEAP_ARGON2_FLAGS,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{clean.get('PATH', '')}",
        "PGHOST": postgres_cluster.host,
        "PGPORT": str(postgres_cluster.port),
        "PGUSER": postgres_cluster.user,
    }
    # /tmp itself, not pytest's 0700 tree: the postgres user runs psql from here.
    workdir = (
        Path(os.environ.get("TMPDIR", "/tmp")) / f"rawws-cluster-docs-{os.getpid()}"
    )
    workdir.mkdir(exist_ok=True)
    log = (tmp_path / "cluster.log").open("wb")
    shell = subprocess.Popen(
        ["bash", str(script)],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        for port in nodes:
            await wait_ready(port, shell, tmp_path / "cluster.log")
        pids = [int(pid) for pid in (workdir / "pids").read_text().split()]
        assert len(pids) == 3, "the three `rawws serve … &`"
        assert_redis_wants_a_password(redis_port)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGTERM)
        try:
            shell.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(shell.pid, signal.SIGKILL)
            shell.wait()
        log.close()
        password = workdir / "redis-password"
        redis_shutdown(redis_port, password.read_text() if password.exists() else "")
        psql(postgres_cluster, "DROP DATABASE IF EXISTS rawws WITH (FORCE)")
        psql(postgres_cluster, "DROP ROLE IF EXISTS rawws")
        shutil.rmtree(workdir, ignore_errors=True)


def assert_redis_wants_a_password(port: int) -> None:
    """The page's Redis refuses a client without the password."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(64).startswith(b"-NOAUTH"), (
            "the page's Redis asks for a password"
        )


async def wait_ready(port: int, shell: subprocess.Popen[bytes], log: Path) -> None:
    """``/readyz`` 200: the node answers, and so do its store (PostgreSQL) and its bus (Redis)."""
    deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_S
    while True:
        if shell.poll() is not None:
            pytest.fail(
                f"the page's commands stopped (exit {shell.returncode}):\n{log.read_text()}"
            )
        with contextlib.suppress(OSError):
            reply = await http(port, "GET", "/readyz")
            if reply.status == 200:
                assert sorted(reply.json["checked"]) == ["bus", "store"], reply.body
                return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(
                f"node on {port} not ready within {READY_TIMEOUT_S} s:\n{log.read_text()}"
            )
        await asyncio.sleep(0.1)
