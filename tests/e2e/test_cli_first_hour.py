"""A new user's first hour with `rawws send` and `rawws chat`: what comes back, and every first mistake.

Each case runs the real command (``python -m rawws``) against a real server, in
process (``start_server``) or a stand-in for a server that is not rawws, and
checks the whole of stdout and stderr and the exit code: the reply is printed,
``-v`` shows the frames, and each mistake is one line that names the fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import os
import socket
import sys
from collections.abc import AsyncIterator

import pexpect
import pytest
from websockets.asyncio.server import ServerConnection as WebsocketsConnection
from websockets.asyncio.server import serve
from wsproto.frame_protocol import Opcode

from rawws.chat import wire as chat
from rawws.cli import (
    EXIT_CANNOT_CONNECT,
    EXIT_CLOSED_WITH_ERROR,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
)
from rawws.cli.output import trace_line
from rawws.core.frames import TunedFrameProtocol
from rawws.core.trace import TracedFrame, TracingFrames
from rawws.server.connection import ServerConnection
from testkit import free_port
from tests.conftest import StartServer
from tests.support.helpers import (
    CLI_WAIT_S,
    PASSWORD,
    rawws,
    register,
    registered_token,
)

PING = b"abcd"


class PingsFirst:
    """An endpoint that pings with its 101 (one write: the client has the ping before it sends), then echoes."""

    def on_open(self, session: ServerConnection) -> None:
        session.send_frame(session.ws.ping(PING))

    def on_message(self, session: ServerConnection, data: str | bytes) -> None:
        session.send_nowait(data)

    def on_close(self, session: ServerConnection, code: int) -> None:
        pass


@contextlib.asynccontextmanager
async def answering(response: bytes) -> AsyncIterator[int]:
    """A server that is not rawws: it reads a whole request, writes ``response`` and closes (with nothing
    left unread, so the client gets a FIN after the answer, never a reset)."""

    async def answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(
            OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError
        ):
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            writer.write(response)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def http_answer(status: str, content_type: str, body: bytes, *headers: str) -> bytes:
    head = [
        f"HTTP/1.1 {status}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        *headers,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def error(line: str) -> str:
    return f"rawws: {line}\n"


# -- 6. `rawws send` shows what comes back --------------------------------------------------------


async def test_send_prints_the_echo(start_server: StartServer):
    server = await start_server()
    assert await rawws("send", f"ws://127.0.0.1:{server.port}/echo", "hello") == (
        EXIT_OK,
        "hello\n",
        "",
    )


async def test_send_prints_a_binary_reply_as_hex(start_server: StartServer):
    server = await start_server()
    result = await rawws(
        "send",
        "--binary",
        f"ws://127.0.0.1:{server.port}/echo",
        "-",
        stdin=b"\x00\xff\n",
    )
    assert result == (EXIT_OK, "00ff0a\n", "")


async def test_send_prints_what_the_server_said_first_then_the_reply(
    start_server: StartServer,
):
    """A raw send to the chat with a token: the welcome, then the chat's answer to text that is not JSON."""
    server = await start_server()
    token = await registered_token(server.port, "ada")
    code, out, err = await rawws(
        "send", f"ws://127.0.0.1:{server.port}/ws?token={token}", "hi"
    )
    assert (code, err) == (EXIT_OK, "")
    limits = chat.limits(
        server.config.chat_max_rooms_per_connection,
        server.config.chat_messages_per_s,
        server.config.chat_message_burst,
    )
    assert out == (
        chat.welcome("ada", ["lobby"], limits) + "\n"
        '{"type":"error","code":"bad_json","message":"frame is not valid JSON"}\n'
    )


async def test_chat_from_a_pipe_shows_the_replies_to_the_last_lines(
    start_server: StartServer,
):
    """The end of input closes the chat; the echoes that come before the server answers the close are shown."""
    server = await start_server()
    url = f"ws://127.0.0.1:{server.port}/echo"
    result = await rawws("chat", url, stdin=b"first\nsecond\n")
    out = f"connected to {url} (compressed); Ctrl-D or /quit to leave\n< first\n< second\n"
    assert result == (EXIT_OK, out, "")


async def test_send_verbose_traces_each_frame_on_stderr(start_server: StartServer):
    server = await start_server()
    result = await rawws("send", "-v", f"ws://127.0.0.1:{server.port}/echo", "hello")
    trace = "> text 5 B: hello\n> close 1000 (normal closure)\n< text 5 B: hello\n< close 1000 (normal closure)\n"
    assert result == (EXIT_OK, "hello\n", trace)


async def test_send_verbose_shows_a_ping_that_comes_while_closing_and_no_pong(
    start_server: StartServer,
):
    """After our close a ping gets no pong (RFC 6455 §5.5.1 lets the closing side stop answering)."""
    server = await start_server()
    server.add_websocket("/pings", PingsFirst())
    result = await rawws("send", "-v", f"ws://127.0.0.1:{server.port}/pings", "hi")
    trace = (
        "> text 2 B: hi\n> close 1000 (normal closure)\n< ping 4 B: 61 62 63 64\n< text 2 B: hi\n"
        "< close 1000 (normal closure)\n"
    )
    assert result == (EXIT_OK, "hi\n", trace)


async def test_chat_verbose_traces_the_ping_and_our_pong(start_server: StartServer):
    server = await start_server()
    server.add_websocket("/pings", PingsFirst())
    url = f"ws://127.0.0.1:{server.port}/pings"
    result = await rawws("chat", "-v", url, stdin=b"")
    out = f"connected to {url} (compressed); Ctrl-D or /quit to leave\n"
    trace = (
        "< ping 4 B: 61 62 63 64\n> pong 4 B: 61 62 63 64\n> close 1000 (normal closure)\n"
        "< close 1000 (normal closure)\n"
    )
    assert result == (EXIT_OK, out, trace)


async def test_chat_verbose_in_a_terminal_prints_frames_above_the_prompt(
    start_server: StartServer,
):
    """On a terminal the trace goes where messages go, so the line being typed is redrawn below it."""
    server = await start_server()
    server.add_websocket("/pings", PingsFirst())
    env = {**os.environ, "TERM": "xterm", "PYTHONUNBUFFERED": "1"}
    argv = ["-m", "rawws", "chat", "-v", f"ws://127.0.0.1:{server.port}/pings"]
    child = pexpect.spawn(
        sys.executable,
        argv,
        env=env,
        encoding="utf-8",
        timeout=CLI_WAIT_S,
        dimensions=(24, 120),
    )
    try:
        for line in ("< ping 4 B: 61 62 63 64", "> pong 4 B: 61 62 63 64"):
            await asyncio.to_thread(child.expect_exact, f"\r\x1b[K{line}\r\n\r\x1b[K> ")
        child.send("hello\r")
        await asyncio.to_thread(child.expect_exact, "\r\x1b[K> text 5 B: hello\r\n")
        await asyncio.to_thread(child.expect_exact, "\r\x1b[K< hello\r\n")
        child.sendcontrol("d")
        await asyncio.to_thread(
            child.expect_exact, "\r\x1b[K> close 1000 (normal closure)\r\n"
        )
        await asyncio.to_thread(child.expect, pexpect.EOF)
        await asyncio.to_thread(child.close)
        assert child.exitstatus == EXIT_OK
    finally:
        child.terminate(force=True)


async def test_send_closed_with_an_error_code_names_it_in_the_trace_and_the_error(
    start_server: StartServer,
):
    server = await start_server(max_message_bytes=100)
    url = f"ws://127.0.0.1:{server.port}/echo"
    result = await rawws("send", "-v", "--no-compression", url, "x" * 101)
    trace = (
        f"> text 101 B: {'x' * 59}…\n> close 1000 (normal closure)\n"
        "< close 1009 (message too big): message over 100 bytes\n"
    )
    assert result == (
        EXIT_CLOSED_WITH_ERROR,
        "",
        trace
        + error("connection closed: 1009 (message too big): message over 100 bytes"),
    )


async def test_send_to_a_reader_that_went_away_still_ends_well(
    start_server: StartServer,
):
    """`rawws send … | true`: the reply cannot be written, and that is no error (nor a traceback)."""
    server = await start_server()
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rawws", "send", f"ws://127.0.0.1:{server.port}/echo", "hello",
            stdin=asyncio.subprocess.DEVNULL, stdout=write_end, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
    finally:
        os.close(write_end)
    _, err = await asyncio.wait_for(process.communicate(), CLI_WAIT_S)
    assert (process.returncode, err) == (EXIT_OK, b"")


# -- 7. the real mistake, and what to type instead ------------------------------------------------


async def test_chat_on_the_web_page_says_to_log_in(start_server: StartServer):
    server = await start_server()
    result = await rawws("chat", f"ws://127.0.0.1:{server.port}")
    line = (
        f"http://127.0.0.1:{server.port}/ is the chat's web page, not a WebSocket; "
        f"to chat, log in: rawws chat --user NAME ws://127.0.0.1:{server.port}"
    )
    assert result == (EXIT_REFUSED, "", error(line))


async def test_send_on_the_web_page_says_to_log_in(start_server: StartServer):
    server = await start_server()
    result = await rawws("send", f"ws://127.0.0.1:{server.port}/", "hi there")
    line = (
        f"http://127.0.0.1:{server.port}/ is the chat's web page, not a WebSocket; "
        f"to say it in the chat, log in: rawws send --user NAME ws://127.0.0.1:{server.port} 'hi there'"
    )
    assert result == (EXIT_REFUSED, "", error(line))


@pytest.mark.parametrize("command", ["chat", "send"])
async def test_the_chat_without_credentials_says_it_needs_user(
    start_server: StartServer, command: str
):
    server = await start_server()
    words = ("hi",) if command == "send" else ()
    result = await rawws(command, f"ws://127.0.0.1:{server.port}/ws", *words)
    verb = "to chat" if command == "chat" else "to say it in the chat"
    suggestion = " ".join(
        ("rawws", command, "--user", "NAME", f"ws://127.0.0.1:{server.port}", *words)
    )
    line = f"ws://127.0.0.1:{server.port}/ws is the chat, which needs a login; {verb}, log in: {suggestion}"
    assert result == (EXIT_REFUSED, "", error(line))


async def test_a_refused_token_says_to_log_in_instead(start_server: StartServer):
    server = await start_server()
    result = await rawws(
        "send", f"ws://127.0.0.1:{server.port}/ws?token=not-a-token", "hi"
    )
    line = (
        f"ws://127.0.0.1:{server.port}/ws refused the URL's credential (malformed token); "
        f"to say it in the chat, log in: rawws send --user NAME ws://127.0.0.1:{server.port} hi"
    )
    assert result == (EXIT_REFUSED, "", error(line))
    assert "not-a-token" not in result[2]


async def test_send_user_on_echo_says_at_once_that_user_talks_to_the_chat(
    start_server: StartServer,
):
    """It used to wait for an ack /echo never sends (it echoes the join instead); now the missing welcome
    tells at once. ``--timeout`` is longer than ``rawws`` waits for the process: waiting for it fails the test."""
    server = await start_server()
    await register(server.port, "ada")
    result = await rawws(
        "send", "--timeout", str(3 * CLI_WAIT_S), "--user", "ada", f"ws://127.0.0.1:{server.port}/echo", "hi",
        password=PASSWORD,
    )  # fmt: skip
    line = (
        f"ws://127.0.0.1:{server.port}/echo is not the chat (its first message was not a welcome); "
        f"--user talks to the chat, at /ws: rawws send --user ada ws://127.0.0.1:{server.port} hi, "
        f"or drop --user for a raw WebSocket: rawws send ws://127.0.0.1:{server.port}/echo hi"
    )
    assert result == (EXIT_REFUSED, "", error(line))


async def test_chat_user_on_echo_says_that_user_talks_to_the_chat(
    start_server: StartServer,
):
    server = await start_server()
    await register(server.port, "ada")
    url = f"ws://127.0.0.1:{server.port}/echo"
    result = await rawws(
        "chat", "--user", "ada", url, stdin=b"hello\n", password=PASSWORD
    )
    out = f"connected to {url} as ada (compressed); /help lists commands, Ctrl-D or /quit to leave\n"
    line = (
        f"{url} is not the chat (its first message was not a welcome); --user talks to the chat, at /ws: "
        f"rawws chat --user ada ws://127.0.0.1:{server.port}, or drop --user for a raw WebSocket: rawws chat {url}"
    )
    assert result == (EXIT_REFUSED, out, error(line))


async def test_a_user_without_an_account_is_told_where_to_create_one(
    start_server: StartServer,
):
    server = await start_server()
    result = await rawws(
        "send",
        "--user",
        "newcomer",
        f"ws://127.0.0.1:{server.port}",
        "hi",
        password=PASSWORD,
    )
    line = (
        "login refused: HTTP 401: invalid username or password; "
        f"if newcomer has no account yet, create one on http://127.0.0.1:{server.port}/"
    )
    assert result == (EXIT_REFUSED, "", error(line))


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_send_with_an_http_url_names_the_ws_url(scheme: str):
    port = free_port()
    result = await rawws("send", f"{scheme}://127.0.0.1:{port}/echo?x=1", "hi")
    fixed = {"http": "ws", "https": "wss"}[scheme]
    line = (
        f"{scheme}://127.0.0.1:{port}/echo is an HTTP URL; a WebSocket URL starts with ws:// (wss:// for https://): "
        f"rawws send '{fixed}://127.0.0.1:{port}/echo?…' hi"
    )
    assert result == (EXIT_USAGE, "", error(line))


async def test_chat_with_no_scheme_names_the_ws_url():
    port = free_port()
    result = await rawws("chat", f"127.0.0.1:{port}/echo")
    assert result == (
        EXIT_USAGE,
        "",
        error(
            f"127.0.0.1:{port}/echo has no scheme: rawws chat ws://127.0.0.1:{port}/echo"
        ),
    )


async def test_a_port_nothing_listens_on_says_to_start_the_server():
    port = free_port()
    result = await rawws("send", f"ws://127.0.0.1:{port}/echo", "hi")
    line = (
        f"could not connect to ws://127.0.0.1:{port}/echo: nothing listens on 127.0.0.1:{port} (connection refused); "
        f"start the server first: rawws serve --echo --port {port}"
    )
    assert result == (EXIT_CANNOT_CONNECT, "", error(line))


async def test_a_url_without_a_port_is_told_rawws_listens_on_8765():
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 80)) == 0:
            pytest.skip("something listens on 127.0.0.1:80 here")
    result = await rawws("chat", "ws://127.0.0.1/echo")
    line = (
        "could not connect to ws://127.0.0.1:80/echo: nothing listens on 127.0.0.1:80 (connection refused); "
        "rawws serve listens on 8765 by default: rawws chat ws://127.0.0.1:8765/echo"
    )
    assert result == (EXIT_CANNOT_CONNECT, "", error(line))


async def test_wss_to_a_server_without_tls_says_to_use_ws(start_server: StartServer):
    server = await start_server()
    result = await rawws("send", f"wss://127.0.0.1:{server.port}/echo", "hi")
    line = (
        f"could not connect to wss://127.0.0.1:{server.port}/echo: the server does not speak TLS there (wss://); "
        f"use ws://: rawws send ws://127.0.0.1:{server.port}/echo hi"
    )
    assert result == (EXIT_CANNOT_CONNECT, "", error(line))


async def test_echo_on_a_server_without_it_says_to_start_it_with_echo(
    start_server: StartServer,
):
    server = await start_server(echo=False)
    result = await rawws("send", f"ws://127.0.0.1:{server.port}/echo", "hi")
    line = (
        f"no WebSocket at ws://127.0.0.1:{server.port}/echo: this server runs without /echo (start it with "
        f"rawws serve --echo); to say it in the chat, log in: rawws send --user NAME ws://127.0.0.1:{server.port} hi"
    )
    assert result == (EXIT_REFUSED, "", error(line))


async def test_a_path_rawws_does_not_serve_names_the_chat(start_server: StartServer):
    server = await start_server()
    result = await rawws("chat", f"ws://127.0.0.1:{server.port}/chat")
    line = (
        f"no WebSocket at ws://127.0.0.1:{server.port}/chat (HTTP 404): the chat is at /ws; "
        f"to chat, log in: rawws chat --user NAME ws://127.0.0.1:{server.port}"
    )
    assert result == (EXIT_REFUSED, "", error(line))


async def test_an_http_resource_of_rawws_is_not_a_websocket(start_server: StartServer):
    server = await start_server()
    result = await rawws("send", f"ws://127.0.0.1:{server.port}/healthz", "hi")
    line = (
        f"http://127.0.0.1:{server.port}/healthz is not a WebSocket (HTTP 200 OK, application/json); "
        f"to say it in the chat, log in: rawws send --user NAME ws://127.0.0.1:{server.port} hi"
    )
    assert result == (EXIT_REFUSED, "", error(line))


# -- servers that are not rawws: nothing rawws-specific is said of them ------------------------------


async def test_another_servers_web_page_is_a_web_page():
    page = http_answer(
        "200 OK", "text/html; charset=utf-8", b"<!DOCTYPE html><title>hi</title>"
    )
    async with answering(page) as port:
        result = await rawws("chat", f"ws://127.0.0.1:{port}/app")
    line = f"http://127.0.0.1:{port}/app is a web page (HTTP 200), not a WebSocket: check the URL's path"
    assert result == (EXIT_REFUSED, "", error(line))


async def test_another_servers_404_page_is_not_shown_as_html():
    page = http_answer(
        "404 File not found", "text/html", b"<!DOCTYPE HTML>\n<html>nothing here</html>"
    )
    async with answering(page) as port:
        result = await rawws("send", f"ws://127.0.0.1:{port}/", "hi")
    assert result == (
        EXIT_REFUSED,
        "",
        error("upgrade refused: HTTP 404 File not found: a web page, not a WebSocket"),
    )


async def test_another_servers_401_shows_its_reason():
    def refuse(connection: WebsocketsConnection, request):  # type: ignore[no-untyped-def]
        return connection.respond(http.HTTPStatus.UNAUTHORIZED, "token required\n")

    async def never(connection: WebsocketsConnection) -> None:
        pass

    async with serve(never, "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        result = await rawws("send", f"ws://127.0.0.1:{port}/", "hi")
    assert result == (
        EXIT_REFUSED,
        "",
        error("upgrade refused: HTTP 401 Unauthorized: token required"),
    )


async def test_a_redirect_says_where_it_points():
    moved = http_answer(
        "301 Moved Permanently",
        "text/plain",
        b"moved\n",
        "Location: https://example.test/ws?k=v",
    )
    async with answering(moved) as port:
        result = await rawws("send", f"ws://127.0.0.1:{port}/ws", "hi")
    line = "upgrade refused: HTTP 301 Moved Permanently: moved (it points to https://example.test/ws)"
    assert result == (EXIT_REFUSED, "", error(line))


async def test_a_server_that_does_not_speak_http_is_not_a_websocket_server():
    async with answering(b"SSH-2.0-OpenSSH_9.6\r\n") as port:
        result = await rawws("send", f"ws://127.0.0.1:{port}/", "hi")
    line = (
        f"ws://127.0.0.1:{port}/ closed the connection without answering the upgrade: not a WebSocket server, "
        f"or one that wants TLS (wss://127.0.0.1:{port}/)"
    )
    assert result == (EXIT_REFUSED, "", error(line))


async def test_a_server_that_answers_in_another_protocol_is_not_a_websocket_server():
    async with answering(b"HELLO THERE\r\n\r\n") as port:
        result = await rawws("chat", f"ws://127.0.0.1:{port}/")
    line = f"ws://127.0.0.1:{port}/ answered the upgrade with something that is not HTTP: not a WebSocket server"
    assert result == (EXIT_REFUSED, "", error(line))


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (http_answer("404 Not Found", "text/plain", b"no\n"), "HTTP 404"),
        (
            http_answer("200 OK", "text/html", b"<!doctype html><p>welcome"),
            "no token in its answer",
        ),
    ],
)
async def test_a_server_without_a_rawws_login_says_user_cannot_work_there(
    answer: bytes, why: str
):
    async with answering(answer) as port:
        result = await rawws(
            "send", "--user", "ada", f"ws://127.0.0.1:{port}", "hi", password=PASSWORD
        )
    line = (
        f"ws://127.0.0.1:{port} has no rawws login (POST /auth/login: {why}), so --user cannot work there; "
        "without --user, rawws send talks to any WebSocket URL"
    )
    assert result == (EXIT_REFUSED, "", error(line))


# -- the trace's lines, without a server ---------------------------------------------------------------


def test_trace_lines_name_kind_size_and_a_visible_preview():
    assert (
        trace_line(TracedFrame(True, "text", "héllo\n\x1b[31m"))
        == "> text 12 B: héllo\\n\\x1b[31m"  # the escapes of rawws.chatclient.visible
    )
    assert trace_line(TracedFrame(False, "binary", bytes(range(20)))) == (
        "< binary 20 B: 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f …"
    )
    assert trace_line(TracedFrame(False, "pong", b"")) == "< pong 0 B"
    assert trace_line(TracedFrame(False, "close")) == "< close (no code)"
    assert (
        trace_line(TracedFrame(False, "close", code=4000, reason="bye now"))
        == "< close 4000: bye now"
    )
    assert (
        trace_line(TracedFrame(True, "close", code=1001)) == "> close 1001 (going away)"
    )


def test_tracing_frames_reports_fragments_and_both_directions():
    seen: list[TracedFrame] = []
    sender = TracingFrames(TunedFrameProtocol(False, []), seen.append)
    receiver = TracingFrames(TunedFrameProtocol(True, []), seen.append)
    wire = (
        sender.send_data("he", fin=False)
        + sender.send_data("llo", fin=True)
        + sender.close(1000, "done")
    )
    receiver.receive_bytes(bytes(wire))
    frames = list(receiver.received_frames())
    assert [frame.opcode for frame in frames] == [
        Opcode.TEXT,
        Opcode.TEXT,
        Opcode.CLOSE,
    ]
    assert seen == [
        TracedFrame(True, "text", "he", fragment="first"),
        TracedFrame(True, "text", "llo", fragment="last"),
        TracedFrame(True, "close", code=1000, reason="done"),
        TracedFrame(False, "text", "he", fragment="first"),
        TracedFrame(False, "text", "llo", fragment="last"),
        TracedFrame(False, "close", code=1000, reason="done"),
    ]
