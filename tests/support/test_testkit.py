"""testkit: what tests, bench, soak and conformance share must do what its docstrings say."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testkit import (
    StartupFailed,
    chat_token,
    free_port,
    masked_frame,
    start,
    stop,
    wait_for_port,
)
from tests.conftest import StartServer


def unmask(frame: bytes) -> tuple[int, int, bytes]:
    """(first byte, header length, payload) of a masked client frame."""
    length = frame[1] & 0x7F
    offset = {126: 4, 127: 10}.get(length, 2)
    mask = frame[offset : offset + 4]
    body = frame[offset + 4 :]
    return frame[0], offset, bytes(b ^ mask[i % 4] for i, b in enumerate(body))


def test_masked_frame_is_rfc_6455s_own_example() -> None:
    # RFC 6455 §5.7: a single-frame masked text message, "Hello"
    frame = masked_frame(0x1, b"Hello", mask=bytes.fromhex("37fa213d"))
    assert frame == bytes.fromhex("818537fa213d7f9f4d5158")


@pytest.mark.parametrize(
    ("size", "header"), [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)]
)
def test_masked_frame_lengths_and_payload(size: int, header: int) -> None:
    payload = os.urandom(size)
    frame = masked_frame(0x2, payload)
    first, offset, unmasked = unmask(frame)
    assert (first, offset, unmasked) == (0x82, header, payload)
    assert frame[1] & 0x80, "a client frame is masked"


def test_masked_frame_flags() -> None:
    assert masked_frame(0x0, b"x", fin=False)[0] == 0x00
    assert masked_frame(0x1, b"x", rsv1=True)[0] == 0xC1


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_wait_for_port_returns_once_something_listens() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        wait_for_port(listener.getsockname()[1], timeout=5)


def test_wait_for_port_fails_at_once_when_the_process_exits() -> None:
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    began = time.monotonic()
    with pytest.raises(StartupFailed, match="exited with code 3"):
        wait_for_port(free_port(), process=process, name="it", timeout=30)
    assert time.monotonic() - began < 10


def test_wait_for_port_gives_up_after_its_timeout() -> None:
    with pytest.raises(StartupFailed, match="did not accept connections"):
        wait_for_port(free_port(), timeout=0.3)


def test_start_logs_and_appends(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    for word in ("one", "two"):
        child = start([sys.executable, "-c", f"print({word!r})"], log=log, append=True)
        assert child.wait(timeout=30) == 0
    assert log.read_text().split() == ["one", "two"]
    child = start([sys.executable, "-c", "print('three')"], log=log)
    assert child.wait(timeout=30) == 0
    assert log.read_text().split() == ["three"]


def test_start_of_a_missing_program_is_a_startup_failure(tmp_path: Path) -> None:
    with pytest.raises(StartupFailed, match="cannot start"):
        start([str(tmp_path / "no-such-program")])


SLEEPER = "import time; print('ready', flush=True); time.sleep(60)"
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    " print('ready', flush=True); time.sleep(60)"
)


def wait_ready(log: Path) -> None:
    deadline = time.monotonic() + 30
    while "ready" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)


def test_stop_sends_the_signal_and_returns_the_exit_code(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    child = start([sys.executable, "-c", SLEEPER], log=log)
    wait_ready(log)
    assert stop(child, sig=signal.SIGINT) != -signal.SIGKILL
    assert child.returncode is not None
    assert stop(child) == child.returncode  # a second stop only reports


def test_stop_kills_a_child_that_ignores_the_signal(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    child = start([sys.executable, "-c", STUBBORN], log=log)
    wait_ready(log)
    assert stop(child, grace=0.5) == -signal.SIGKILL


def test_stop_signals_the_childs_children_in_a_session_of_their_own(
    tmp_path: Path,
) -> None:
    log = tmp_path / "child.log"
    parent = (  # on SIGTERM it waits for its own child and logs how that one ended
        "import signal, subprocess, sys, time;"
        f" p = subprocess.Popen([sys.executable, '-c', {SLEEPER!r}]);"
        " signal.signal(signal.SIGTERM, lambda *_: sys.exit(print(p.wait())));"
        " time.sleep(60)"
    )
    child = start([sys.executable, "-c", parent], log=log, new_session=True)
    wait_ready(log)
    assert stop(child, grace=20) == 0
    assert log.read_text().split() == ["ready", str(-signal.SIGTERM)]


async def test_chat_token_registers_and_logs_in(start_server: StartServer) -> None:
    server = await start_server()
    token = await asyncio.to_thread(chat_token, server.port, "kit", "kit password 1")
    assert token.count(".") == 2  # a JWT
