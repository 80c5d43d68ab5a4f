"""A throwaway Redis Sentinel setup: a primary, one replica and three sentinels, on free loopback ports.

Three sentinels with a quorum of two, as a real deployment has them: one sentinel alone
could promote on its own view, and the test would not show that the sentinels agree and
elect a leader. ``down-after-milliseconds`` 1000 and ``failover-timeout`` 5000 make a
failover take a few seconds (the defaults take 30 s and more).

Every process runs in its own directory under the test's tmp dir, from a config file only its
owner reads (the password is not on the command line), and is killed by its PID at teardown.
The servers ask for a password (``requirepass``, and ``masterauth`` for the replica and for
the primary once it is a replica); the sentinels are given it (``sentinel auth-pass``).
Nothing is persisted.

Without ``redis-server`` or ``redis-sentinel`` the tests that need it are skipped, except in CI
(``CI=true``), where a missing binary must fail the build instead of hiding.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from testkit import free_port
from tests.support.redis_server import redis_binary

SERVICE = "rawws-bus"
QUORUM = 2
SENTINELS = 3
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
START_TIMEOUT_S = 20.0


class Process:
    """One ``redis-server`` or ``redis-sentinel`` with its own directory and config file."""

    def __init__(self, binary: str, directory: Path, config: str) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        directory.mkdir(parents=True)
        self.config = directory / "redis.conf"
        self.config.touch(mode=0o600)
        self.config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {directory}\n{config}"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.directory / "log", "ab") as log:
            self.process = subprocess.Popen(
                [self.binary, str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )

    def log(self) -> str:
        return (self.directory / "log").read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        """SIGKILL: no goodbye to any client, replica or sentinel."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


class RedisSentinels:
    """The primary (``servers[0]`` at the start), its replica and the sentinels watching them."""

    def __init__(self, server: str, sentinel: str, directory: Path) -> None:
        self.password = secrets.token_hex(16)
        self._clients: dict[int, redis.Redis] = {}
        auth = f"requirepass {self.password}\nmasterauth {self.password}\n"
        volatile = "save ''\nappendonly no\n"
        primary = Process(server, directory / "primary", auth + volatile)
        replica = Process(
            server,
            directory / "replica",
            f"{auth}{volatile}replicaof 127.0.0.1 {primary.port}\n",
        )
        self.servers = [primary, replica]
        self.sentinels = [
            Process(
                sentinel,
                directory / f"sentinel{n}",
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} {QUORUM}\n"
                f"sentinel auth-pass {SERVICE} {self.password}\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {SERVICE} 1\n",
            )
            for n in range(SENTINELS)
        ]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://:{self.password}@{hosts}/{SERVICE}/0"

    def start(self) -> None:
        for process in (*self.servers, *self.sentinels):
            process.start()
        self.wait(self.ready, "the sentinels did not see the replica and each other")

    def ready(self) -> bool:
        """Each sentinel knows the primary up, its replica and the two other sentinels."""
        for sentinel in self.sentinels:
            state = self.ask(sentinel).sentinel_master(SERVICE)
            if (
                state["port"] != self.servers[0].port
                or state["num-slaves"] != 1
                or state["num-other-sentinels"] != SENTINELS - 1
                or state["is_sdown"]
            ):
                return False
        replication = self.server(self.servers[1]).info("replication")
        return bool(replication.get("master_link_status") == "up")

    def primary_port(self) -> int:
        """The port the sentinels name as the primary now."""
        host, port = self.ask(self.sentinels[0]).sentinel_get_master_addr_by_name(
            SERVICE
        )
        return int(port)

    def wait_promoted(self, old_port: int) -> Process:
        """The replica, once every sentinel names it and it says it is the primary."""

        def promoted() -> bool:
            return (
                all(
                    int(self.ask(s).sentinel_get_master_addr_by_name(SERVICE)[1])
                    != old_port
                    for s in self.sentinels
                )
                and self.server(self.servers[1]).info("replication")["role"] == "master"
            )

        self.wait(promoted, "the sentinels did not promote the replica")
        return self.servers[1]

    def wait(self, condition: object, failure: str) -> None:
        assert callable(condition)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for process in (*self.servers, *self.sentinels):
                if process.process is not None and process.process.poll() not in (
                    None,
                    -signal.SIGKILL,
                ):
                    pytest.fail(f"{process.directory.name} exited: {process.log()}")
            try:
                if condition():
                    return
            except (redis.RedisError, OSError):
                pass
            time.sleep(0.1)
        logs = "\n".join(
            f"{p.directory.name}: {p.log()[-600:]}" for p in self.sentinels
        )
        pytest.fail(f"{failure}\n{logs}")

    def ask(self, sentinel: Process) -> redis.Redis:
        """A client of ``sentinel`` (kept, closed by ``stop``)."""
        return self._client(sentinel.port, None)

    def server(self, server: Process) -> redis.Redis:
        """A client of the Redis ``server``, with the password (kept, closed by ``stop``)."""
        return self._client(server.port, self.password)

    def _client(self, port: int, password: str | None) -> redis.Redis:
        if port not in self._clients:
            self._clients[port] = redis.Redis(
                port=port, password=password, socket_timeout=1.0, decode_responses=True
            )
        return self._clients[port]

    def stop(self) -> None:
        for client in self._clients.values():
            client.close()
        for process in (*self.sentinels, *self.servers):
            process.kill()


def sentinel_binary() -> str:
    """The ``redis-sentinel`` to run; without one the test is skipped (failed under ``CI=true``)."""
    binary = shutil.which("redis-sentinel") or (
        "/usr/bin/redis-sentinel" if os.path.exists("/usr/bin/redis-sentinel") else None
    )
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-sentinel is required in CI")
        pytest.skip("redis-sentinel not installed")
    return binary


@pytest.fixture
def redis_sentinels(tmp_path: Path) -> Iterator[RedisSentinels]:
    setup = RedisSentinels(redis_binary(), sentinel_binary(), tmp_path / "sentinel")
    try:
        setup.start()
        yield setup
    finally:
        setup.stop()
