"""Start, watch and stop the child processes of a run (server under test, wstest, client driver)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from conformance.console import say

LOOPBACK = "127.0.0.1"


class StartupFailed(RuntimeError):
    """A process exited, or never accepted connections, before the run could begin."""


def free_port() -> int:
    """A port that was free a moment ago; the child binds it right after, so a clash is unlikely."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free a moment ago (all probed at once, so none repeats)."""
    with contextlib.ExitStack() as probes:
        ports = []
        for _ in range(count):
            probe = probes.enter_context(
                socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            )
            probe.bind((LOOPBACK, 0))
            ports.append(int(probe.getsockname()[1]))
        return ports


def substitute(template: list[str], values: Mapping[str, str]) -> list[str]:
    """Replace ``{name}`` placeholders in each argument (plain text replace: other braces stay as they are)."""
    result = []
    for argument in template:
        for name, value in values.items():
            argument = argument.replace("{" + name + "}", value)
        result.append(argument)
    return result


def start(
    command: list[str], log_path: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``command`` with its output in ``log_path``, in its own process group so stop() reaches its children."""
    with log_path.open(
        "wb"
    ) as log:  # the child keeps its own copy of the file descriptor
        try:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=None if env is None else dict(env),
                start_new_session=True,
                preexec_fn=_default_sigint,
            )
        except OSError as error:
            raise StartupFailed(f"cannot start {command[0]}: {error}") from error


def _default_sigint() -> None:
    """Undo an inherited "ignore SIGINT" (as in background jobs of a script), so stop()'s SIGINT stops the child."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_tcp(
    port: int, process: subprocess.Popen[bytes], name: str, timeout: float = 30.0
) -> None:
    """Return once something accepts TCP on the loopback port; fail early if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StartupFailed(
                f"{name} exited with code {process.returncode} before accepting connections"
            )
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.1)
    raise StartupFailed(
        f"{name} did not accept connections on {LOOPBACK}:{port} within {timeout:.0f} s"
    )


def stop(process: subprocess.Popen[bytes], name: str, grace: float = 10.0) -> None:
    """SIGINT (a clean shutdown), then SIGKILL once ``grace`` seconds have passed."""
    if process.poll() is not None:
        return
    _signal_group(process, signal.SIGINT)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        say(f"{name} did not stop within {grace:.0f} s of SIGINT; killing it")
        _signal_group(process, signal.SIGKILL)
        process.wait()


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group is already gone
        os.killpg(process.pid, signum)


def tail(log_path: Path, lines: int = 20) -> str:
    """The end of a log, to show next to a failure."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    last = text.splitlines()[-lines:] or ["(empty)"]
    return "\n".join(f"    {line}" for line in last)
