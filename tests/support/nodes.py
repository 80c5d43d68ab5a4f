"""Real `rawws serve` processes for the tests that need a node as operators run it (signals, logs, kills).

``start_node`` spawns ``python -m rawws serve`` on 127.0.0.1 with a data dir
of its own and returns a ``Node`` once ``/healthz`` answers. The port is a
free one picked here, or, with ``port=0``, one the kernel picks: then it is
read from the "listening on" log line (``--workers`` needs that, since the
parent binds with SO_REUSEPORT and the workers share it). stdout and stderr
(the log) go to a file, so a test can read every line, even after a SIGKILL.
``stop`` sends a signal and waits, killing the node only if it hangs;
``kill`` is the SIGKILL a crash test wants, without waiting.

``serve_once`` runs a `rawws serve` that is expected to stop by itself (a
refused start) and hands back its whole output; ``spawn_serve`` starts one
whose stdout and stderr the test reads whole after it ends (a start the test
interrupts).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from testkit import free_port
from tests.support.helpers import http

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
POLL_S = 0.05
LISTENING = re.compile(r"listening on https?://[^:\s]+:(\d+)")
CHEAP_ARGON2_FLAGS = {
    "RAWWS_ARGON2_TIME_COST": "1",
    "RAWWS_ARGON2_MEMORY_KIB": "8192",
    "RAWWS_ARGON2_PARALLELISM": "1",
}


@dataclass
class Node:
    port: int
    process: asyncio.subprocess.Process
    log_path: Path
    args: list[str] = field(default_factory=list)
    metrics_port: int | None = None

    def log(self) -> str:
        """Everything the node wrote so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL, as a crash would; ``process.wait()`` or ``stop()`` reaps it."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` and return the exit code; SIGKILL if the node is not gone within STOP_TIMEOUT_S."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                self.kill()
                await self.process.wait()
        assert self.process.returncode is not None
        return self.process.returncode


def new_log_path(directory: Path) -> Path:
    """``node.log`` in ``directory``, or ``node-2.log``… if a node already ran there."""
    path, n = directory / "node.log", 1
    while path.exists():
        n += 1
        path = directory / f"node-{n}.log"
    return path


def serve_command(directory: Path, *args: str) -> list[str]:
    """``python -m rawws serve --data-dir DIRECTORY/data ARGS`` (a later flag wins over an earlier one)."""
    return [
        sys.executable,
        "-m",
        "rawws",
        "serve",
        "--data-dir",
        str(directory / "data"),
        *args,
    ]


def serve_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without any RAWWS_* variable, plus cheap argon2 and ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAWWS_")}
    return {**clean, **CHEAP_ARGON2_FLAGS, **(env or {})}


def serve_once(
    directory: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """A `rawws serve --port 0 ARGS` that ends by itself (a refused start): its exit code, stdout and stderr."""
    return subprocess.run(
        serve_command(directory, "--port", "0", *args),
        cwd=REPO_ROOT,
        env=serve_environment(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def spawn_serve(
    directory: Path, *args: str, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """A `rawws serve --port 0 ARGS` whose stdout and stderr are pipes (``communicate`` reads them whole)."""
    return await asyncio.create_subprocess_exec(
        *serve_command(directory, "--port", "0", *args),
        cwd=REPO_ROOT,
        env=serve_environment(env),
        stdin=subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def start_node(
    directory: Path,
    *args: str,
    port: int | None = None,
    env: dict[str, str] | None = None,
    metrics: bool = False,
    wrapper: Sequence[str] = (),
) -> Node:
    """A `rawws serve` on 127.0.0.1 with ``args`` (and ``/metrics`` on a port of its own when ``metrics``),
    ready once ``/healthz`` answers.

    ``port``: None picks a free one; 0 lets the kernel pick (read from the log).
    ``wrapper``: a command that runs the node (``prlimit --nofile=…`` for its limits).
    The environment is this one without any RAWWS_* variable, plus cheap argon2 and ``env``.
    """
    if port is None:
        port = free_port()
    metrics_port = free_port() if metrics else None
    if metrics_port is not None:
        args = (*args, "--metrics-port", str(metrics_port))
    directory.mkdir(parents=True, exist_ok=True)
    command = [
        *wrapper,
        *serve_command(directory, "--host", "127.0.0.1", "--port", str(port), *args),
    ]
    log_path = new_log_path(directory)
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=REPO_ROOT,
            env=serve_environment(env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
        )
    node = Node(port, process, log_path, command, metrics_port)
    try:
        await wait_ready(node)
    except BaseException:
        node.kill()
        await process.wait()
        raise
    return node


async def wait_ready(node: Node) -> None:
    """Learn the port from the log if the kernel picked it, then wait for ``/healthz``: 200."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    while True:
        if node.process.returncode is not None:
            raise AssertionError(
                f"rawws serve exited with {node.process.returncode}:\n{node.log()}"
            )
        if node.port == 0 and (found := LISTENING.search(node.log())):
            node.port = int(found.group(1))
        if node.port != 0:
            with contextlib.suppress(OSError):
                if (await http(node.port, "GET", "/healthz")).status == 200:
                    return
        if loop.time() > deadline:
            raise AssertionError(
                f"rawws serve did not answer /healthz within {START_TIMEOUT_S}s:\n{node.log()}"
            )
        await asyncio.sleep(POLL_S)


StartNode = Callable[[], Awaitable[Node]]


@contextlib.asynccontextmanager
async def node_starter(
    directory: Path, env: dict[str, str]
) -> AsyncIterator[StartNode]:
    """Start ``rawws serve`` nodes on demand, each in its own folder under ``directory`` with
    ``env``; every node started is stopped on the way out."""
    started: list[Node] = []

    async def start() -> Node:
        node = await start_node(directory / f"node{len(started)}", port=0, env=env)
        started.append(node)
        return node

    try:
        yield start
    finally:
        for node in started:
            await node.stop()
