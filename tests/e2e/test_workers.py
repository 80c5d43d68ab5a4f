"""`rawws serve --workers 2`: two processes on one port, one chat (through Redis), on SQLite.

Which worker holds a connection is read from the kernel (/proc/net/tcp and the
workers' file descriptors), so the test knows that messages crossed processes.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.chat_client import ChatClient, close_quietly, connect_chat, new_user
from tests.support.nodes import Node, start_node
from tests.support.redis_server import RedisServer

WAIT_S = 30.0
ENV = {
    "RAWWS_JWT_SECRET": "workers-test-secret-" + "z" * 32,
    "RAWWS_ARGON2_TIME_COST": "1",
    "RAWWS_ARGON2_MEMORY_KIB": "8192",
    "RAWWS_ARGON2_PARALLELISM": "1",
    "RAWWS_REGISTRATIONS_PER_HOUR_PER_ADDRESS": "100000",  # every test client is 127.0.0.1
    "RAWWS_WEBSOCKETS_PER_ADDRESS": "100000",
}


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def owner_of(server_port: int, client_port: int, pids: list[int]) -> int:
    """The worker pid holding the server side of the connection from ``client_port``."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], int(fields[9])
        if (
            int(local.split(":")[1], 16) == server_port
            and int(remote.split(":")[1], 16) == client_port
        ):
            for pid in pids:
                if inode in socket_inodes(pid):
                    return pid
    raise AssertionError(f"no worker holds the connection from port {client_port}")


def client_port(client: ChatClient) -> int:
    return int(client.ws.transport.get_extra_info("sockname")[1])


@pytest.fixture
async def workers(tmp_path: Path, redis_server: RedisServer) -> AsyncIterator[Node]:
    # port=0: the kernel picks, the parent binds it with SO_REUSEPORT and both workers share it
    node = await start_node(
        tmp_path, "--workers", "2", "--bus", redis_server.url, port=0, env=ENV
    )
    yield node
    await node.stop()


async def test_two_workers_share_the_port_and_the_chat(workers: Node) -> None:
    found = re.search(r"2 workers on \S+ \(pids (\d+) (\d+)\)", workers.log())
    assert found, workers.log()
    pids = [int(found.group(1)), int(found.group(2))]
    clients: list[ChatClient] = []
    joined_at: dict[str, int] = {}  # user → the lobby's last id when they joined
    try:
        # connect until both workers hold members (the kernel spreads connections by hash);
        # each first join is a `joined` event in the lobby's ids, which the earlier members get
        for i in range(40):
            name = f"worker{i}"
            client = await connect_chat(
                workers.port, await new_user(workers.port, name), name
            )
            joined_at[name] = (await client.join("lobby"))["last_id"]
            clients.append(client)
            owners = {owner_of(workers.port, client_port(c), pids) for c in clients}
            if len(clients) >= 6 and owners == set(pids):
                break
        by_worker = {
            pid: [
                c
                for c in clients
                if owner_of(workers.port, client_port(c), pids) == pid
            ]
            for pid in pids
        }
        assert all(by_worker.values()), (
            f"the kernel put every connection on one worker: {by_worker}"
        )
        per_sender = 15
        acked = await asyncio.gather(
            *(
                c.flood("lobby", per_sender, prefix=f"{c.user}-", window=5)
                for c in clients
            )
        )
        total = per_sender * len(clients)
        # every join was answered before anything was said: the messages follow the last join
        first, last = max(joined_at.values()) + 1, max(joined_at.values()) + total
        # SQLite shared by two processes: ids stay unique and without gaps (one writer at a time)
        assert sorted(i for ids in acked for i in ids) == list(range(first, last + 1))
        await asyncio.gather(
            *(c.wait_message_id("lobby", last, timeout=WAIT_S) for c in clients)
        )
        for client in clients:
            assert client.entry_ids("lobby") == list(
                range(joined_at[client.user] + 1, last + 1)
            ), client.user
        # SIGTERM to the parent stops both workers gracefully: every open connection is told 1001
        assert await workers.stop(signal.SIGTERM) == 0
        for client in clients:
            await client.wait_closed()
            assert client.close_code == 1001, (client.user, client.close_code)
    finally:
        await close_quietly(*clients)
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        )


async def test_more_than_one_worker_without_a_bus_is_refused(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rawws",
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path),
        "--workers",
        "2",
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), WAIT_S)
    assert process.returncode == 1
    lines = [line for line in stderr.decode().splitlines() if line.strip()]
    assert len(lines) == 1 and "needs --bus" in lines[0], lines
