"""A throwaway ``redis-server`` on a free loopback port, that a test can SIGKILL and start again.

Nothing is persisted (``--save ''``, no AOF): a restart is an empty Redis, as
after a crash of a cache node, which is the worst case for pub/sub.

It asks for a password (``requirepass``, from a config file only its owner reads, as
docs/cluster.md does it: not on the command line, where ``ps`` shows it), and ``url``
carries it: ``redis://:PASSWORD@127.0.0.1:PORT/0``. ``anonymous_url`` is the same
without it, for the tests that show what a stranger gets.

Without the binary the tests that need it are skipped, except in CI
(``CI=true``), where a missing Redis must fail the build instead of hiding.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import free_port

START_TIMEOUT_S = 10.0


class RedisServer:
    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def anonymous_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def socket(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def unix_url(self) -> str:
        """The same Redis over its Unix socket: there the password can only be a parameter."""
        return f"unix://{self.socket}?password={self.password}&db=0"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        log = open(
            self.directory / "redis.log", "ab"
        )  # the child keeps its own copy of the fd
        config = self.directory / "redis.conf"
        config.touch(mode=0o600)
        config.write_text(f"requirepass {self.password}\n")
        self.process = subprocess.Popen(
            [
                self.binary,
                str(config),
                "--port",
                str(self.port),
                "--unixsocket",
                str(self.socket),
                "--unixsocketperm",
                "700",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"redis-server exited: {(self.directory / 'redis.log').read_text()[-2000:]}"
                )
            try:
                with socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.5
                ) as sock:
                    sock.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                    answer = b""
                    while len(answer) < 12 and (chunk := sock.recv(16)):
                        answer += chunk
                    if answer.startswith(b"+OK\r\n+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        pytest.fail("redis-server did not answer PING")

    def kill(self) -> None:
        """SIGKILL: no goodbye to any client."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        self.kill()


def redis_binary() -> str:
    """The ``redis-server`` to run; without one the test is skipped (failed under ``CI=true``)."""
    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is required in CI")
        pytest.skip("redis-server not installed")
    return binary


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(redis_binary(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
