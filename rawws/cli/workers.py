"""`rawws serve --workers N`: N processes on one port, one event loop (one core) each.

The parent binds the port with ``SO_REUSEPORT`` (never listening on it: that
only reserves the port, so ``--port 0`` gives every worker the same one),
then starts N ordinary `rawws serve` processes that listen there with
``SO_REUSEPORT`` too; the kernel spreads new connections over them. They share
the store and the bus like any other nodes, so a message stored by one worker
reaches the members of every other. Without a bus they could not, so
``--workers`` above 1 needs ``--bus``.

SIGTERM or SIGINT to the parent is passed to every worker, which shut down
gracefully (1001 to their connections, everything accepted stored); if one
worker dies, the parent stops the others and exits 1.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

from rawws.config import ServerConfig

log = logging.getLogger("rawws.server")

STOP_GRACE_S = 30.0  # after SIGTERM, a worker that has not exited by then is killed
POLL_S = 0.2


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound, never listening, ``SO_REUSEPORT`` socket on (``host``, ``port``): the port the workers share."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _metrics_port(config: ServerConfig, index: int) -> list[str]:
    """Each worker's counters are its own: worker ``index`` serves /metrics on ``--metrics-port`` + ``index``."""
    if config.metrics_port is None or config.metrics_port == 0:
        return []
    return ["--metrics-port", str(config.metrics_port + index)]


def run_workers(config: ServerConfig, argv: Sequence[str]) -> int:
    """Start ``config.workers`` copies of `rawws serve` ``argv`` on one port; wait for a signal."""
    reserved = reserve_port(config.host, config.port)
    port = reserved.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "rawws",
        *argv,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = {**os.environ, "RAWWS_REUSE_PORT": "1"}
    workers = [
        subprocess.Popen(
            command + _metrics_port(config, index), env=env, stdin=subprocess.DEVNULL
        )
        for index in range(config.workers)
    ]
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {
        sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    scheme = "https" if config.tls else "http"
    log.info(
        "%d workers on %s://%s:%d (pids %s)",
        config.workers,
        scheme,
        config.host,
        port,
        " ".join(str(w.pid) for w in workers),
    )
    failed = False
    try:
        while not stopping:
            if any(worker.poll() is not None for worker in workers):
                failed = True
                log.error(
                    "a worker exited (codes %s); stopping the others",
                    [w.returncode for w in workers],
                )
                break
            time.sleep(POLL_S)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for worker in workers:
            try:
                worker.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        reserved.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if failed else 0
