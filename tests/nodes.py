"""Real `rawws serve` processes for the tests that need a node as operators run it (signals, logs, proxies).

``start_node`` spawns ``python -m rawws serve`` on a free loopback port with
a data dir of its own, waits until ``/healthz`` answers, and returns a
``Node``; ``stop`` sends SIGTERM and waits, killing it only if it hangs.
Its stderr (the log) is kept in a file, so a test can read every line.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import free_port, http

REPO_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0
CHEAP_ARGON2_FLAGS = {"RAWWS_ARGON2_TIME_COST": "1", "RAWWS_ARGON2_MEMORY_KIB": "8192", "RAWWS_ARGON2_PARALLELISM": "1"}


@dataclass
class Node:
    port: int
    process: asyncio.subprocess.Process
    log_path: Path
    args: list[str] = field(default_factory=list)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        if self.process.returncode is None:
            self.process.send_signal(sig)
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        assert self.process.returncode is not None
        return self.process.returncode


async def start_node(
    directory: Path, *args: str, port: int | None = None, env: dict[str, str] | None = None
) -> Node:
    """A `rawws serve` on 127.0.0.1 with ``args``, ready once ``/healthz`` answers."""
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAWWS_")}
    environment = {**clean, **CHEAP_ARGON2_FLAGS, **(env or {})}
    command = [
        sys.executable, "-m", "rawws", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--data-dir", str(directory / "data"), *args,
    ]
    log_path = directory / f"node-{port}.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=REPO_ROOT, env=environment, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file
        )
    node = Node(port, process, log_path, command)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    while True:
        if process.returncode is not None:
            raise AssertionError(f"rawws serve exited with {process.returncode}:\n{node.log()}")
        try:
            if (await http(port, "GET", "/healthz")).status == 200:
                return node
        except OSError:
            pass
        if loop.time() > deadline:
            await node.stop(signal.SIGKILL)
            raise AssertionError(f"rawws serve did not answer /healthz within {START_TIMEOUT_S}s:\n{node.log()}")
        await asyncio.sleep(0.1)
