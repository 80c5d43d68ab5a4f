"""`rawws send` and `rawws chat` as a user runs them: real processes, real servers, a real pseudo-terminal."""

from __future__ import annotations

import asyncio
import http
import os
import sys
import unicodedata
from collections.abc import AsyncIterator

import pexpect
import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.server import ServerConnection as WebsocketsConnection
from websockets.asyncio.server import serve

from rawws.chatclient.terminal import (
    EndOfInput,
    Interrupt,
    LineEditor,
    RawText,
    Submit,
)
from rawws.chatclient.visible import ESCAPED, visible
from rawws.cli import (
    EXIT_CANNOT_CONNECT,
    EXIT_CLOSED_WITH_ERROR,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_TIMEOUT,
    EXIT_USAGE,
)
from rawws.cli.output import trace_line
from rawws.core.handshake import accept_key
from rawws.core.trace import TracedFrame
from rawws.server.connection import ServerConnection
from rawws.server.server import Server
from testkit import free_port
from tests.conftest import StartServer
from tests.support.helpers import rawws, wait_for_condition

WAIT_S = 20.0  # the bound on every wait here (a process start included); nothing should come near it


class Recorder:
    """An echo endpoint that remembers what it got and how each connection closed."""

    def __init__(self) -> None:
        self.messages: list[str | bytes] = []
        self.close_codes: list[int] = []
        self.sessions: list[ServerConnection] = []

    def on_open(self, session: ServerConnection) -> None:
        self.sessions.append(session)

    def on_message(self, session: ServerConnection, data: str | bytes) -> None:
        self.messages.append(data)
        session.send_nowait(data)

    def on_close(self, session: ServerConnection, code: int) -> None:
        self.close_codes.append(code)


async def recording_server(
    start_server: StartServer, **settings: object
) -> tuple[Server, Recorder]:
    server = await start_server(**settings)
    recorder = Recorder()
    server.add_websocket("/record", recorder)
    return server, recorder


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A port that accepts TCP and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.transport.abort()
    server.close()


# -- rawws send --------------------------------------------------------------------------------


async def test_send_delivers_the_message_and_closes_with_1000(
    start_server: StartServer,
):
    server, recorder = await recording_server(start_server)
    code, _, err = await rawws(
        "send", f"ws://127.0.0.1:{server.port}/record", "hello, server"
    )
    assert (code, err) == (EXIT_OK, "")
    await wait_for_condition(lambda: recorder.close_codes == [1000], timeout=WAIT_S)
    assert recorder.messages == ["hello, server"]


async def test_send_reads_the_message_from_stdin(start_server: StartServer):
    server, recorder = await recording_server(start_server)
    url = f"ws://127.0.0.1:{server.port}/record"
    code, _, err = await rawws("send", url, "-", stdin=b"line one\nline two\n")
    assert (code, err) == (EXIT_OK, "")
    await wait_for_condition(lambda: recorder.close_codes == [1000], timeout=WAIT_S)
    assert recorder.messages == ["line one\nline two"]


async def test_send_binary_from_stdin(start_server: StartServer):
    server, recorder = await recording_server(start_server)
    code, _, _ = await rawws(
        "send",
        "--binary",
        f"ws://127.0.0.1:{server.port}/record",
        "-",
        stdin=b"\x00\xff\n",
    )
    assert code == EXIT_OK
    await wait_for_condition(lambda: recorder.close_codes == [1000], timeout=WAIT_S)
    assert recorder.messages == [b"\x00\xff\n"]


async def test_send_to_a_refusing_server_exits_4_and_shows_the_status(
    start_server: StartServer,
):
    server = await start_server()
    code, _, err = await rawws(
        "send", f"ws://127.0.0.1:{server.port}/not-a-websocket", "hi"
    )
    assert code == EXIT_REFUSED
    assert "HTTP 404" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


async def test_send_refused_with_401_shows_401():
    def refuse(connection: WebsocketsConnection, request):  # type: ignore[no-untyped-def]
        return connection.respond(http.HTTPStatus.UNAUTHORIZED, "token required\n")

    async def never(connection: WebsocketsConnection) -> None:
        pass

    async with serve(never, "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        code, _, err = await rawws("send", f"ws://127.0.0.1:{port}/", "hi")
    assert code == EXIT_REFUSED
    assert "HTTP 401 Unauthorized: token required" in err


async def test_send_prints_a_close_reason_and_a_refusal_on_one_line_with_controls_escaped():
    """What a server says (a close reason, a refusal's body) is escaped too: it cannot add a line to stderr."""

    async def close_oddly(connection: WebsocketsConnection) -> None:
        await connection.close(4000, "bye\nrawws: fake\x1b[31m\u202e")

    def refuse(connection: WebsocketsConnection, request: object) -> object:
        return connection.respond(
            http.HTTPStatus.FORBIDDEN, "no\nrawws: fake\x1b]0;t\x07\n"
        )

    async with serve(close_oddly, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        code, _, err = await rawws("send", f"ws://127.0.0.1:{port}/", "hi")
    assert code == EXIT_CLOSED_WITH_ERROR
    assert err == "rawws: connection closed: 4000: bye\\nrawws: fake\\x1b[31m\\u202e\n"
    async with serve(close_oddly, "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        code, _, err = await rawws("send", f"ws://127.0.0.1:{port}/", "hi")
    assert code == EXIT_REFUSED
    assert err.count("\n") == 1 and "\x1b" not in err and "\x07" not in err, err


async def test_send_to_a_closed_port_exits_3():
    nothing_there = free_port()  # bound, then released
    code, _, err = await rawws("send", f"ws://127.0.0.1:{nothing_there}/", "hi")
    assert code == EXIT_CANNOT_CONNECT
    assert "could not connect" in err and "Traceback" not in err


async def test_send_to_a_silent_server_exits_5(silent_port: int):
    code, _, err = await rawws(
        "send", "--timeout", "0.5", f"ws://127.0.0.1:{silent_port}/", "hi"
    )
    assert code == EXIT_TIMEOUT
    assert "timed out" in err and "Traceback" not in err


async def test_send_closed_by_the_server_with_an_error_code_exits_6(
    start_server: StartServer,
):
    server, _ = await recording_server(start_server, max_message_bytes=100)
    code, _, err = await rawws(
        "send", "--no-compression", f"ws://127.0.0.1:{server.port}/record", "x" * 1000
    )
    assert code == EXIT_CLOSED_WITH_ERROR
    assert "1009" in err


async def test_send_with_a_bad_url_exits_2():
    code, _, err = await rawws("send", "http://127.0.0.1/", "hi")
    assert code == EXIT_USAGE
    assert "ws://" in err


async def test_send_with_a_bad_header_exits_2():
    code, _, _ = await rawws("send", "-H", "no colon here", "ws://127.0.0.1/", "hi")
    assert code == EXIT_USAGE


async def test_send_passes_headers_and_subprotocols():
    seen: list[tuple[str | None, str | None]] = []

    def look(connection: WebsocketsConnection, request):  # type: ignore[no-untyped-def]
        seen.append(
            (
                request.headers.get("X-Trace"),
                request.headers.get("Sec-WebSocket-Protocol"),
            )
        )

    async def echo(connection: WebsocketsConnection) -> None:
        async for message in connection:
            await connection.send(message)

    async with serve(
        echo, "127.0.0.1", 0, process_request=look, subprotocols=["b"]
    ) as server:
        port = server.sockets[0].getsockname()[1]
        code, _, err = await rawws(
            "send",
            "-H",
            "X-Trace: 42",
            "--subprotocol",
            "a",
            "--subprotocol",
            "b",
            f"ws://127.0.0.1:{port}/",
            "hi",
        )
    assert (code, err) == (EXIT_OK, "")
    assert seen == [("42", "a, b")]


async def test_help_documents_the_exit_codes():
    code, out, _ = await rawws("send", "--help")
    assert code == 0
    for line in (
        "3  could not connect",
        "4  the server refused",
        "5  timed out",
        "6  the connection closed",
    ):
        assert line in out


# -- rawws chat ---------------------------------------------------------------------------------


def spawn_chat(url: str) -> pexpect.spawn:
    env = {**os.environ, "TERM": "xterm", "PYTHONUNBUFFERED": "1"}
    return pexpect.spawn(
        sys.executable,
        ["-m", "rawws", "chat", url],
        env=env,
        encoding="utf-8",
        timeout=WAIT_S,
        dimensions=(24, 120),
    )


async def expect(child: pexpect.spawn, text: str) -> None:
    await asyncio.to_thread(child.expect_exact, text)


async def finish(child: pexpect.spawn) -> int:
    await asyncio.to_thread(child.expect, pexpect.EOF)
    await asyncio.to_thread(child.close)
    return child.exitstatus


async def test_chat_in_a_terminal_sends_lines_shows_messages_and_quits_on_ctrl_d(
    start_server: StartServer,
):
    server, recorder = await recording_server(start_server)
    child = spawn_chat(f"ws://127.0.0.1:{server.port}/record")
    try:
        await expect(child, "connected to")
        await expect(child, "> ")
        child.send("hello there\r")
        await expect(child, "< hello there")
        child.sendcontrol("d")
        assert await finish(child) == EXIT_OK
    finally:
        child.terminate(force=True)
    await wait_for_condition(lambda: recorder.close_codes == [1000], timeout=WAIT_S)
    assert recorder.messages == ["hello there"]


async def test_chat_redraws_the_line_being_typed_after_an_incoming_message(
    start_server: StartServer,
):
    server, recorder = await recording_server(start_server)
    child = spawn_chat(f"ws://127.0.0.1:{server.port}/record")
    try:
        await expect(child, "> ")
        await wait_for_condition(lambda: len(recorder.sessions) == 1, timeout=WAIT_S)
        child.send("half a li")
        await expect(child, "half a li")
        recorder.sessions[0].send_nowait("news from elsewhere")
        # The prompt line is cleared, the message printed, and the typed text put back.
        await expect(child, "\r\x1b[K< news from elsewhere\r\n\r\x1b[K> half a li")
        child.send("ne\r")
        await expect(child, "< half a line")
        child.sendcontrol("c")
        assert await finish(child) == EXIT_OK
    finally:
        child.terminate(force=True)
    await wait_for_condition(lambda: recorder.close_codes == [1000], timeout=WAIT_S)
    assert recorder.messages == ["half a line"]


async def test_chat_reports_a_lost_connection_without_a_traceback():
    async def vanish(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip().decode()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n"
        )
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.transport.abort()

    server = await asyncio.start_server(vanish, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        child = spawn_chat(f"ws://127.0.0.1:{port}/")
        try:
            await expect(child, "connection closed: 1006")
            assert await finish(child) == EXIT_CLOSED_WITH_ERROR
            assert "Traceback" not in (child.before or "")
        finally:
            child.terminate(force=True)
    finally:
        server.close()


async def test_chat_without_a_terminal_reads_plain_lines(start_server: StartServer):
    """Piped stdin: each line is sent; at the end of input the chat closes with 1000."""
    server, recorder = await recording_server(start_server)
    code, out, err = await rawws(
        "chat", f"ws://127.0.0.1:{server.port}/record", stdin=b"first\nsecond\n"
    )
    assert code == EXIT_OK, err
    await wait_for_condition(lambda: recorder.close_codes == [1000], timeout=WAIT_S)
    assert recorder.messages == ["first", "second"]
    assert "\x1b" not in out  # no terminal codes when not on a terminal


# -- the line editor and the raw text format, without a terminal ------------------------------


def test_editor_submits_typed_lines_once_per_enter():
    editor = LineEditor()
    assert editor.feed(b"hello\r") == [Submit("hello")]
    assert editor.feed(b"one\r\ntwo\n") == [Submit("one"), Submit("two")]
    assert editor.line == ""


def test_editor_edits_with_backspace_arrows_home_end_and_kill_keys():
    editor = LineEditor()
    editor.feed(b"helo\x1b[D")  # left arrow
    editor.feed(b"l")
    assert (editor.line, editor.cursor) == ("hello", 4)
    editor.feed(b"\x01X\x05!")  # Ctrl-A, insert, Ctrl-E, insert
    assert editor.line == "Xhello!"
    editor.feed(b"\x7f\x7f")  # backspace twice
    assert editor.line == "Xhell"
    editor.feed(b" world\x17")  # Ctrl-W deletes the word before the cursor
    assert editor.line == "Xhell "
    editor.feed(b"\x01\x1b[3~")  # Home, Delete
    assert editor.line == "hell "
    editor.feed(b"\x15")  # Ctrl-U at the start deletes nothing
    editor.feed(b"\x05\x15")  # End, Ctrl-U deletes everything
    assert editor.line == ""


def test_editor_decodes_utf8_split_across_reads_and_renders_the_cursor():
    editor = LineEditor(prompt="> ")
    data = "héllo 世界".encode()
    editor.feed(data[:2])
    editor.feed(data[2:])
    assert editor.line == "héllo 世界"
    editor.feed(b"\x1b[D\x1b[D")  # two left: the cursor is before the wide characters
    assert editor.render() == "\r\x1b[K> héllo 世界\x1b[4D"


def test_editor_turns_ctrl_d_and_ctrl_c_into_actions():
    editor = LineEditor()
    assert editor.feed(b"\x04") == [EndOfInput()]
    editor.feed(b"ab\x01")
    assert (
        editor.feed(b"\x04") == []
    )  # on a non-empty line, Ctrl-D deletes under the cursor
    assert editor.line == "b"
    assert editor.feed(b"\x03") == [Interrupt()]


def test_editor_ignores_unknown_escape_sequences_and_control_keys():
    editor = LineEditor()
    editor.feed(b"a\x1b[1;5Cb\x1bxc\x07d\x0c")
    assert editor.line == "abcd"


def test_incoming_text_cannot_inject_terminal_escapes_lines_or_bidi():
    assert (
        visible("red \x1b[31m alert\x07\x9b\x7f")
        == "red \\x1b[31m alert\\x07\\x9b\\x7f"
    )
    assert visible("two\nlines\r\tand tab") == "two\\nlines\\r\\tand tab"
    assert visible("hi\n13:07 [lobby] alice: fake") == "hi\\n13:07 [lobby] alice: fake"
    assert visible("abc\u202edcba\u2066x\u2069\u200e\u061c") == (
        "abc\\u202edcba\\u2066x\\u2069\\u200e\\u061c"
    )
    assert visible("para\u2028graph\ud800") == "para\\u2028graph\\ud800"
    assert (
        visible("naïve café, 東京, مرحبا, 👋🏽 \\n")
        == "naïve café, 東京, مرحبا, 👋🏽 \\n"
    )


ANY_CHARACTER = st.characters(
    min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()
)


@given(st.text(ANY_CHARACTER))
def test_visible_output_holds_no_control_or_bidi_character(text: str):
    shown = visible(text)
    assert not any(ord(char) in ESCAPED for char in shown)
    assert not any(unicodedata.category(char) in ("Cc", "Cs") for char in shown)
    shown.encode("utf-8")  # a lone surrogate would raise here, and on the terminal
    assert len(shown.splitlines()) <= 1


@given(
    st.text(
        st.characters(exclude_categories=("Cc", "Cs")).filter(
            lambda c: ord(c) not in ESCAPED
        )
    )
)
def test_visible_leaves_printable_text_unchanged(text: str):
    assert visible(text) == text


def test_trace_lines_stay_one_line():
    frame = TracedFrame(
        sent=False, kind="text", data="a\nb\u202ec", fragment=None, code=None, reason=""
    )
    assert trace_line(frame) == "< text 7 B: a\\nb\\u202ec"


def test_raw_text_format_sends_lines_and_shows_messages():
    raw = RawText()
    assert raw.outgoing("hi") == "hi"
    assert raw.outgoing("") is None
    assert raw.incoming("hello") == "< hello"
    assert raw.incoming(b"\x00\x01") == "< [binary, 2 bytes] 00 01"
