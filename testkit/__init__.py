"""Driving a server from outside, as the tests, bench, soak and conformance all do.

A free port, waiting until something accepts on it, a masked client frame,
starting and stopping a child process, and logging a chat user in. Each of
these used to exist in two to four copies (``tests/support/helpers.py``,
``bench/harness.py``, ``bench/perfkit.py``, ``soak/``,
``conformance/processes.py``) that had drifted apart in small ways: which
signal stops a server, whether a child that dies is noticed while its port
is awaited, how long a connect attempt may take. One copy is one behaviour to
trust.

Standard library only: the benchmark's load client and the soak import it,
and neither should pay for more. It is not part of the ``rawws`` package
(setuptools ships ``rawws*`` only): it is how this repository exercises rawws
from the outside, not something rawws offers its users.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "LOOPBACK",
    "StartupFailed",
    "chat_token",
    "free_port",
    "free_ports",
    "masked_frame",
    "start",
    "stop",
    "wait_for_port",
]

LOOPBACK = "127.0.0.1"


class StartupFailed(RuntimeError):
    """A process exited, or never accepted connections, before it could be used."""


# -- ports ----------------------------------------------------------------------------


def free_port(host: str = LOOPBACK) -> int:
    """A port that was free a moment ago, for a child that must be told its port.

    The child binds it right after; another process could take it in between,
    which on a test machine's loopback is rare enough to accept.
    """
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct free ports: all probed at once, so none is handed out twice."""
    with contextlib.ExitStack() as probes:
        ports = []
        for _ in range(count):
            probe = probes.enter_context(
                socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            )
            probe.bind((host, 0))
            ports.append(int(probe.getsockname()[1]))
        return ports


def wait_for_port(
    port: int,
    *,
    process: subprocess.Popen[bytes] | None = None,
    name: str = "the server",
    timeout: float = 30.0,
    host: str = LOOPBACK,
) -> None:
    """Return once something accepts TCP on ``host:port``.

    Bound is not enough (a server binds before it listens), so this connects.
    With ``process``, a child that exits first fails at once instead of after
    ``timeout``: its log says why, and waiting longer would not help.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise StartupFailed(
                f"{name} exited with code {process.returncode}"
                " before accepting connections"
            )
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise StartupFailed(
                    f"{name} did not accept connections on {host}:{port}"
                    f" within {timeout:g} s"
                ) from None
            time.sleep(0.05)


# -- frames -----------------------------------------------------------------------------


def masked_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv1: bool = False,
    mask: bytes | None = None,
) -> bytes:
    """A client frame as RFC 6455 §5.2 lays it out, masked as §5.3 requires.

    Built by hand, not by rawws or wsproto, so that a test of the server does
    not trust the code under test to speak for the client. ``rsv1`` marks a
    compressed message (RFC 7692); ``mask`` fixes the key (a random one
    otherwise) for frames that must be the same on every run.
    """
    mask = os.urandom(4) if mask is None else mask
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    length = len(payload)
    if length <= 125:
        header = struct.pack("!BB", first, 0x80 | length)
    elif length <= 0xFFFF:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    # XOR as one big integer: as fast for a 1 MiB payload as a byte loop is for 1 KiB
    key = (mask * (length // 4 + 1))[:length]
    body = int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")
    return header + mask + body.to_bytes(length, "big")


# -- processes --------------------------------------------------------------------------


def start(
    command: Sequence[str],
    *,
    log: Path | None = None,
    append: bool = False,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``command`` with no stdin; its stdout and stderr go to ``log``.

    Without ``log``, stdout is dropped and stderr stays this process's, so a
    crash still shows. ``append`` keeps what earlier starts wrote (a server
    restarted within one run keeps one log). ``new_session`` puts the child in
    a process group of its own, which ``stop`` then signals whole: the child's
    own children (workers, a wstest's helpers) stop with it. An inherited
    "ignore SIGINT" (background jobs of a shell script) is undone in the child,
    so that ``stop(process, sig=SIGINT)`` means what it says (only then: a
    ``preexec_fn`` is best avoided in a process with threads).
    """
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    with contextlib.ExitStack() as files:  # the child keeps its own copy of the log
        output = (
            subprocess.DEVNULL
            if log is None
            else files.enter_context(log.open("ab" if append else "wb"))
        )
        try:
            return subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=None if log is None else subprocess.STDOUT,
                env=None if env is None else dict(env),
                cwd=cwd,
                start_new_session=new_session,
                preexec_fn=_default_sigint if ignored else None,
            )
        except OSError as error:
            raise StartupFailed(f"cannot start {command[0]}: {error}") from error


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def stop(
    process: subprocess.Popen[bytes],
    *,
    sig: int = signal.SIGTERM,
    grace: float = 10.0,
) -> int:
    """Send ``sig``, wait up to ``grace`` seconds, then SIGKILL; the exit code.

    A child that leads its own process group (``start(new_session=True)``) is
    signalled with its whole group. A process that is already gone is only
    reaped. A code of ``-SIGKILL`` after another ``sig`` means it had to be
    killed: a caller that cares (a clean shutdown is what it tests) says so.
    """
    if process.poll() is not None:
        return process.returncode
    _signal(process, sig)
    try:
        return process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal(process, signal.SIGKILL)
        return process.wait()


def _signal(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # gone between poll() and here
        if os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)


# -- the chat's accounts ------------------------------------------------------------------


def chat_token(port: int, username: str, password: str, host: str = LOOPBACK) -> str:
    """Register ``username`` on a running ``rawws serve`` and log in: the access token.

    Plain ``urllib``, blocking: the soak and the chat studies call it before
    they open their connections (from a thread when a loop is running).
    """
    credentials = {"username": username, "password": password}
    _post_json(host, port, "/auth/register", credentials)
    return str(_post_json(host, port, "/auth/login", credentials)["access_token"])


def _post_json(host: str, port: int, path: str, body: object) -> dict[str, object]:
    request = urllib.request.Request(
        f"http://{host}:{port}{path}",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer: dict[str, object] = json.load(response)
        return answer
