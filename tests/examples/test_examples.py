"""The three programs in examples/, run as their docstrings say: real processes on a free loopback port.

Every line each program prints is asserted, in order, and nothing else may be
printed (stderr included). The client's addresses vary, so those lines are
matched as patterns; everything else is compared as text.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from asyncio.subprocess import DEVNULL, PIPE, Process
from pathlib import Path

import pytest

from testkit import free_port
from tests.support.helpers import TIMEOUT_S

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PEER = r"127\.0\.0\.1:\d+"


async def start(name: str, *args: str, stdin: bool = False) -> Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / name),
        *args,
        stdin=PIPE if stdin else DEVNULL,
        stdout=PIPE,
        stderr=PIPE,
    )


async def line_of(process: Process) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), TIMEOUT_S)
    assert line, "the program ended before printing the line expected"
    return line.decode().rstrip("\n")


async def type_line(process: Process, text: str) -> None:
    assert process.stdin is not None
    process.stdin.write(text.encode() + b"\n")
    await process.stdin.drain()


async def finish(process: Process, *, eof: bool = False) -> tuple[int, str, str]:
    """Close its stdin (``eof``) and wait: exit status, the rest of stdout, all of stderr."""
    if eof:
        assert process.stdin is not None
        process.stdin.close()
    out, err = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
    return process.returncode or 0, out.decode(), err.decode()


@pytest.fixture
async def chat_server():
    """``python examples/chat_server.py PORT``, and the URI it serves; Ctrl-C (SIGINT) at the end."""
    port = free_port()
    server = await start("chat_server.py", str(port))
    try:
        assert await line_of(server) == f"listening on ws://127.0.0.1:{port}"
        yield server, f"ws://127.0.0.1:{port}"
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()


async def test_two_stdin_clients_and_a_one_shot_sender_on_the_chat_server(
    chat_server: tuple[Process, str],
) -> None:
    server, uri = chat_server
    ann = await start("stdin_client.py", uri, stdin=True)
    assert re.fullmatch(f"{PEER} connects \\(1 connected\\)", await line_of(server))
    bob = await start("stdin_client.py", uri, stdin=True)
    assert re.fullmatch(f"{PEER} connects \\(2 connected\\)", await line_of(server))

    await type_line(ann, "hello from ann")
    assert (
        await line_of(ann) == "< hello from ann"
    )  # the broadcast reaches its sender too
    assert await line_of(bob) == "< hello from ann"
    await type_line(bob, "hi ann")
    assert await line_of(bob) == "< hi ann"
    assert await line_of(ann) == "< hi ann"

    once = await start("send_once.py", uri, "one shot")
    assert await finish(once) == (0, "one shot\n", "")
    assert re.fullmatch(f"{PEER} connects \\(3 connected\\)", await line_of(server))
    assert re.fullmatch(f"{PEER} leaves \\(2 connected\\)", await line_of(server))
    assert await line_of(ann) == "< one shot"
    assert await line_of(bob) == "< one shot"

    assert await finish(ann, eof=True) == (0, "", "")  # Ctrl-D
    assert re.fullmatch(f"{PEER} leaves \\(1 connected\\)", await line_of(server))
    assert await finish(bob, eof=True) == (0, "", "")
    assert re.fullmatch(f"{PEER} leaves \\(0 connected\\)", await line_of(server))

    server.send_signal(signal.SIGINT)  # Ctrl-C
    assert await finish(server) == (0, "stopped\n", "")


async def test_lines_piped_in_are_all_answered_before_the_client_leaves(
    chat_server: tuple[Process, str],
) -> None:
    """Three lines and the end of input at once: the replies arrive after our close frame left."""
    server, uri = chat_server
    client = await start("stdin_client.py", uri, stdin=True)
    assert client.stdin is not None
    client.stdin.write(b"one\ntwo\nthree\n")
    assert await finish(client, eof=True) == (0, "< one\n< two\n< three\n", "")
    assert re.fullmatch(f"{PEER} connects \\(1 connected\\)", await line_of(server))
    assert re.fullmatch(f"{PEER} leaves \\(0 connected\\)", await line_of(server))


async def test_ctrl_c_on_the_server_ends_its_clients(
    chat_server: tuple[Process, str],
) -> None:
    """The server closes every connection with 1001; a stdin client then ends by itself."""
    server, uri = chat_server
    client = await start("stdin_client.py", uri, stdin=True)
    assert re.fullmatch(f"{PEER} connects \\(1 connected\\)", await line_of(server))
    server.send_signal(signal.SIGINT)
    status, out, err = await finish(server)
    assert (status, err) == (0, "")
    assert re.fullmatch(f"{PEER} leaves \\(0 connected\\)\nstopped\n", out)
    assert await finish(client) == (0, "", "")  # stdin still open: the close ended it
