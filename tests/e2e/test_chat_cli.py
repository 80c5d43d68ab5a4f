"""`rawws chat --user` and `rawws send --user`: the chat protocol from the terminal.

First the plain, sans-I/O parts of `rawws.client` (command parser, formatter,
dedupe, backoff schedule, URL rule, HTTP exchange), then real servers with
real processes: two users in pseudo-terminals, a reconnect with recovery
across a server restart, and `rawws send --user`.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import json
import os
import random
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
from websockets.asyncio.client import ClientConnection as PeerConnection
from websockets.asyncio.client import connect as ws_connect

from rawws.chatclient.answers import NotStored, Stored, send_outcome
from rawws.chatclient.commands import (
    BadInput,
    Help,
    JoinRoom,
    LeaveRoom,
    ListRooms,
    Quit,
    SayLine,
    ShowHistory,
    WhoIsHere,
    parse_input,
)
from rawws.chatclient.login import HttpExchange
from rawws.chatclient.reconnect import Backoff, describe, retryable, should_reconnect
from rawws.chatclient.roomlog import RoomLog
from rawws.chatclient.state import ChatState, Formatter
from rawws.chatclient.target import chat_target, url_credential
from rawws.cli import (
    EXIT_CLOSED_WITH_ERROR,
    EXIT_NOT_STORED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
)
from rawws.client.connect import ConnectionClosedError
from rawws.errors import AuthFailed, HandshakeRejected, InvalidHandshake, InvalidURI
from rawws.server.server import Server
from tests.conftest import StartServer
from tests.support.chat_client import chat_handler
from tests.support.helpers import client_env, registered_token
from tests.support.helpers import rawws as run_rawws

WAIT_S = 20.0  # the bound on every wait here (a process start included); nothing should come near it
PASSWORD = "correct horse battery"
FAST_RECONNECT = ("--reconnect-delay", "0.05", "--reconnect-max-delay", "0.2")


# -- the command parser ------------------------------------------------------------------------


def test_plain_lines_are_said_and_blank_lines_ignored():
    assert parse_input("hello there") == SayLine("hello there")
    assert parse_input("  spaced  ") == SayLine("  spaced  ")
    assert parse_input("") is None
    assert parse_input("   ") is None
    assert parse_input("//not a command") == SayLine("/not a command")


def test_commands_are_parsed_with_their_arguments():
    assert parse_input("/join dev") == JoinRoom("dev")
    assert parse_input("/JOIN dev") == JoinRoom("dev")
    assert parse_input("/leave") == LeaveRoom(None)
    assert parse_input("/leave dev") == LeaveRoom("dev")
    assert parse_input("/who") == WhoIsHere(None)
    assert parse_input("/who dev") == WhoIsHere("dev")
    assert parse_input("/history") == ShowHistory(20)
    assert parse_input("/history 5") == ShowHistory(5)
    assert parse_input("/rooms") == ListRooms()
    assert parse_input("/quit") == Quit()
    assert parse_input("/help") == Help()


@pytest.mark.parametrize(
    "line",
    ["/join", "/join a b", "/join Dev", "/join -x", "/join " + "a" * 33, "/leave a b", "/who Nope",
     "/history 0", "/history 201", "/history x", "/history 1 2", "/rooms x", "/quit now", "/frobnicate"],
)  # fmt: skip
def test_bad_commands_say_what_is_wrong(line: str):
    command = parse_input(line)
    assert isinstance(command, BadInput) and command.message


def test_text_the_server_would_refuse_is_refused_before_sending():
    assert parse_input("x" * 4000) == SayLine("x" * 4000)
    too_long = parse_input("x" * 4001)
    assert isinstance(too_long, BadInput) and "4000" in too_long.message


# -- the formatter ---------------------------------------------------------------------------------


def test_messages_presence_and_errors_are_formatted_on_one_line():
    formatter = Formatter(localtime=time.gmtime)
    frame = {
        "type": "message",
        "room": "lobby",
        "id": 3,
        "user": "ada",
        "text": "hi",
        "ts": 3600 * 13 + 60 * 7 + 5,
    }
    assert formatter.message(frame) == "13:07 #3 [lobby] ada: hi"
    assert formatter.message({**frame, "ts": "not a time"}) == "#3 [lobby] ada: hi"
    assert (
        formatter.presence({"room": "dev", "user": "bob", "event": "joined"})
        == "* bob joined dev"
    )
    assert (
        formatter.presence({"room": "dev", "user": "bob", "event": "left"})
        == "* bob left dev"
    )
    assert formatter.error("slow down") == "! slow down"


# -- dedupe ------------------------------------------------------------------------------------------


def test_room_log_shows_each_id_once_and_recovers_from_its_floor():
    log = RoomLog()
    assert log.since is None
    assert log.joined(41)  # a fresh join: 1..41 are history
    assert [log.first_sight(i) for i in (41, 42, 43, 42, 43)] == [
        False,
        True,
        True,
        False,
        False,
    ]
    assert log.since == 43
    # Out of order: 45 before 44. The floor stays at 43 (44 is still wanted), 45 is not shown twice.
    assert log.first_sight(45)
    assert log.since == 43
    assert [log.first_sight(i) for i in (44, 45, 46)] == [True, False, True]
    assert (log.since, log.above) == (46, set())


def test_room_log_notices_a_room_that_went_back_in_time():
    log = RoomLog()
    log.joined(10)
    log.first_sight(11)
    assert log.joined(12)  # a re-join: the replay brings 12
    assert not log.joined(3)  # the server's data was reset
    assert log.since == 3
    assert log.first_sight(4)


def frame(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields})


def message(
    room: str, message_id: int, user: str = "bob", text: str | None = None
) -> str:
    text = text if text is not None else f"message {message_id}"
    return frame("message", room=room, id=message_id, user=user, text=text, ts=0)


def shown(state: ChatState, *frames: str) -> list[str]:
    return [line for data in frames for line in state.receive(data).show]


def test_state_rejoins_every_room_since_the_last_id_and_prints_missed_messages_once():
    state = ChatState("lobby", Formatter(localtime=time.gmtime))
    assert state.on_connected().send == ['{"type":"join","room":"lobby"}']
    assert shown(state, frame("welcome", user="ada", rooms=["lobby"])) == [
        "* signed in as ada"
    ]
    joined = state.receive(frame("joined", room="lobby", users=["ada"], last_id=5))
    assert joined.show == ["* joined lobby; here: ada"]
    assert joined.send == [
        '{"type":"history","room":"lobby","limit":20}'
    ]  # recent ones
    assert state.recovered
    join_dev = state.command(JoinRoom("dev"))
    assert join_dev.send == ['{"type":"join","room":"dev"}'] and state.current == "dev"
    shown(state, frame("joined", room="dev", users=["ada", "bob"], last_id=0))
    assert state.recovered
    assert shown(state, frame("history", room="lobby", messages=[])) == []
    assert shown(state, frame("history", room="dev", messages=[])) == []
    assert shown(state, message("lobby", 6), message("dev", 1)) == [
        "00:00 #6 [lobby] bob: message 6",
        "00:00 #1 [dev] bob: message 1",
    ]

    assert state.on_disconnected().show == []
    assert not state.recovered
    rejoin = state.on_connected()
    assert rejoin.send == [
        '{"type":"join","room":"lobby","since":6}',
        '{"type":"join","room":"dev","since":1}',
    ]
    assert rejoin.show == [
        "* reconnected; rejoining lobby, dev (missed messages follow)"
    ]
    assert shown(state, frame("welcome", user="ada", rooms=["lobby"])) == []
    assert (
        shown(state, frame("joined", room="lobby", users=["ada"], last_id=8)) == []
    )  # quiet on a re-join
    # A replay that overlaps what was shown (6) prints only what was missed, once.
    lines = shown(
        state,
        message("lobby", 6),
        message("lobby", 7),
        message("lobby", 8),
        message("lobby", 7),
    )
    assert lines == [
        "00:00 #7 [lobby] bob: message 7",
        "00:00 #8 [lobby] bob: message 8",
    ]
    assert state.duplicates == 2
    assert not state.recovered  # dev has not answered yet
    shown(state, frame("joined", room="dev", users=["ada"], last_id=1))
    assert state.recovered


def test_state_says_in_the_current_room_and_matches_acks_and_errors_by_ref():
    state = ChatState("lobby")
    state.on_connected()
    first = state.command(SayLine("hello"))
    assert first.send == ['{"type":"say","room":"lobby","text":"hello","ref":"c1"}']
    second = state.command(SayLine("again"))
    assert json.loads(second.send[0])["ref"] == "c2"
    assert (
        shown(state, frame("ack", ref="c1", room="lobby", id=1)) == []
    )  # shown when the message comes
    assert shown(
        state,
        frame("error", code="muted", message="you are muted in lobby", ref="c2"),
    ) == ["! not sent to lobby: you are muted in lobby: “again”"]
    assert state.pending == {}
    assert shown(
        state, frame("error", code="bad_json", message="frame is not valid JSON")
    ) == ["! frame is not valid JSON"]


def test_state_reports_says_without_an_ack_when_the_connection_drops():
    state = ChatState("lobby")
    state.on_connected()
    state.mark_sent(state.command(SayLine("lost in flight")).send[0])
    lines = state.on_disconnected().show
    assert len(lines) == 1 and lines[0].startswith(
        "! no ack for “lost in flight” in lobby"
    )
    offline = state.command(SayLine("while away"))
    assert offline.send == [] and offline.show == ["! not connected: the line waits"]
    assert state.command(WhoIsHere()).show == [
        "! not connected (reconnecting); nothing sent"
    ]
    assert state.command(ListRooms()).show == [
        "* rooms: lobby (current)"
    ]  # local commands still work
    again = state.on_connected().send  # the line typed meanwhile goes after the join
    assert [json.loads(f)["type"] for f in again] == ["join", "say"]
    assert json.loads(again[1])["text"] == "while away"


def test_state_join_switch_leave_who_history():
    state = ChatState("lobby")
    state.on_connected()
    state.command(JoinRoom("dev"))
    assert state.command(JoinRoom("lobby")).show == [
        "* talking in lobby"
    ]  # already in: only switches
    assert state.command(ListRooms()).show == ["* rooms: lobby (current), dev"]
    assert state.command(WhoIsHere()).send == ['{"type":"who","room":"lobby"}']
    assert state.command(ShowHistory(5)).send == [
        '{"type":"history","room":"lobby","limit":5}'
    ]
    leave = state.command(LeaveRoom())
    assert leave.send == ['{"type":"leave","room":"lobby"}'] and leave.show == [
        "* talking in dev"
    ]
    assert shown(state, message("lobby", 9)) == []  # a room we left: nothing shown
    assert state.command(LeaveRoom("lobby")).show == ["! you are not in lobby"]
    state.command(LeaveRoom("dev"))
    assert state.command(SayLine("anyone?")).show == [
        "! you are in no room: /join ROOM first"
    ]
    assert shown(state, frame("members", room="dev", users=["ada", "bob"])) == [
        "* in dev: ada, bob"
    ]
    history = frame(
        "history",
        room="dev",
        messages=[json.loads(message("dev", 1, "ada", "old news"))],
    )
    assert shown(state, history)[0] == "* the last 1 message of dev:"
    assert shown(state, frame("history", room="dev", messages=[])) == [
        "* no messages in dev yet"
    ]


def test_state_undoes_a_join_refused_for_too_many_rooms():
    state = ChatState("lobby")
    state.on_connected()
    state.command(JoinRoom("dev"))
    lines = shown(
        state,
        frame(
            "error", code="too_many_rooms", message="at most 32 rooms per connection"
        ),
    )
    assert lines == ["! at most 32 rooms per connection", "* talking in lobby"]
    assert list(state.rooms) == ["lobby"]


def test_state_survives_odd_frames():
    state = ChatState("lobby")
    assert shown(state, "not json")[0].startswith("! ")
    assert shown(state, b"\x00")[0].startswith("! ")
    assert shown(state, frame("message", room="lobby")) == [
        "! malformed message frame from the server; ignored"
    ]
    assert shown(state, frame("from_the_future", x=1)) == []


# -- reconnecting --------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_with_half_of_each_delay_random():
    backoff = Backoff(initial_s=0.5, cap_s=4.0, attempts=6)
    assert [backoff.ceiling(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    rng = random.Random(7)
    for _ in range(50):
        schedule = backoff.schedule(rng)
        assert len(schedule) == 6
        for attempt, delay in enumerate(schedule, start=1):
            assert backoff.ceiling(attempt) / 2 <= delay <= backoff.ceiling(attempt)
    assert (
        len({tuple(backoff.schedule(rng)) for _ in range(5)}) == 5
    )  # jitter: no two clients in step
    assert Backoff(attempts=0).schedule() == []
    assert (
        Backoff(initial_s=1, cap_s=30, attempts=1000).ceiling(1000) == 30
    )  # no overflow


@pytest.mark.parametrize(
    "settings", [{"initial_s": 0}, {"initial_s": 2, "cap_s": 1}, {"attempts": -1}]
)
def test_backoff_refuses_nonsense(settings: dict[str, float]):
    with pytest.raises(ValueError):
        Backoff(**settings)  # type: ignore[arg-type]


def test_which_closes_and_failures_are_worth_a_reconnect():
    for code in (1001, 1006, 1008, 1011, 1012, 1013, 1014, None):
        assert should_reconnect(code)
    for code in (1000, 1002, 1003, 1007, 1009, 1010):
        assert not should_reconnect(code)
    assert retryable(ConnectionRefusedError(111, "Connection refused"))
    assert retryable(TimeoutError())
    assert retryable(InvalidHandshake("connection lost during the opening handshake"))
    assert retryable(ConnectionClosedError(1006))
    assert retryable(AuthFailed(503, "ticket refused: HTTP 503"))
    assert retryable(AuthFailed(429, "login refused: HTTP 429"))
    assert not retryable(HandshakeRejected(401, "Unauthorized", [], b""))
    assert not retryable(AuthFailed(401, "login refused: HTTP 401"))
    assert not retryable(ValueError("certificate verify failed"))
    assert not retryable(RuntimeError("a bug"))
    assert describe(ConnectionRefusedError(111, "Connection refused")) == os.strerror(
        111
    )
    assert (
        describe(HandshakeRejected(403, "Forbidden", [], b""))
        == "upgrade refused: HTTP 403 Forbidden"
    )


# -- the URL rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "display", "http"),
    [
        ("ws://127.0.0.1:8765", "ws://127.0.0.1:8765/ws", "127.0.0.1:8765"),
        ("http://127.0.0.1:8765/", "ws://127.0.0.1:8765/ws", "127.0.0.1:8765"),
        ("ws://chat.example/ws", "ws://chat.example:80/ws", "chat.example"),
        ("https://chat.example", "wss://chat.example:443/ws", "chat.example"),
        ("wss://[::1]:9000/chat/ws", "wss://[::1]:9000/chat/ws", "[::1]:9000"),
    ],
)
def test_chat_url_rule(url: str, display: str, http: str):
    target = chat_target(url)
    assert (target.display, target.host_header) == (display, http)
    ws_url = target.ws_url("T.K+N")
    assert ws_url == display + "?ticket=T.K%2BN"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host",
        "ws://",
        "ws://host/ws?token=x",
        "ws://host/ws?ticket=x",
        "ws://u:p@host",
        "ws://h:99999",
    ],
)
def test_chat_url_rule_refuses(url: str):
    with pytest.raises(InvalidURI):
        chat_target(url)


def test_credentials_in_a_url_are_noticed():
    assert url_credential("ws://h/ws?token=abc") == "token"
    assert url_credential("ws://h/ws?x=1&ticket=abc") == "ticket"
    assert url_credential("ws://h/echo") is None
    assert url_credential("ws://h/echo?tokens=1") is None


# -- HTTP and `send` outcomes, sans I/O --------------------------------------------------------------


def test_http_exchange_writes_json_and_reads_a_split_answer():
    exchange = HttpExchange(
        "POST", "/auth/login", "127.0.0.1:8765", {"username": "ada", "password": "pw"}
    )
    request = exchange.request()
    head, _, body = request.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /auth/login HTTP/1.1\r\n")
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body) == {"username": "ada", "password": "pw"}
    answer = b'HTTP/1.1 200 OK\r\nContent-Length: 22\r\n\r\n{"access_token": "t1"}'
    assert exchange.receive_data(answer[:30]) is None
    result = exchange.receive_data(answer[30:])
    assert (
        result is not None
        and result.status == 200
        and result.json() == {"access_token": "t1"}
    )


def test_http_exchange_bearer_and_early_close():
    exchange = HttpExchange("POST", "/auth/ticket", "h", bearer="tok")
    assert b"authorization: bearer tok" in exchange.request().lower()
    exchange.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{")
    with pytest.raises(ConnectionError):
        exchange.receive_data(b"")


def test_send_outcome_waits_for_its_ack_or_any_error():
    assert send_outcome(frame("welcome", user="ada", rooms=["lobby"]), "r") is None
    assert send_outcome(frame("joined", room="lobby", users=[], last_id=0), "r") is None
    assert send_outcome(frame("ack", ref="other", room="lobby", id=1), "r") is None
    assert send_outcome(frame("ack", ref="r", room="lobby", id=7), "r") == Stored(
        "lobby", 7
    )
    assert send_outcome(
        frame("error", code="unavailable", message="not stored", ref="r"), "r"
    ) == NotStored("unavailable", "not stored")


SANS_IO_CLIENT_MODULES = (
    "commands",
    "state",
    "target",
    "login",
    "reconnect",
    "visible",
    "pacing",
    "says",
    "events",
    "formatter",
    "output",
)
CLIENT_IO_MODULES = {"rawws.client.connect", "rawws.client.connection"} | {
    f"rawws.chatclient.{name}"
    for name in ("terminal", "session", "chat_login", "outbox")
}


@pytest.mark.parametrize("module", SANS_IO_CLIENT_MODULES)
def test_chat_client_does_no_io(module: str):
    tree = ast.parse(
        (
            Path(__file__).resolve().parents[2]
            / "rawws"
            / "chatclient"
            / f"{module}.py"
        ).read_text()
    )
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    top = {name.split(".")[0] for name in imported}
    assert not top & {"asyncio", "socket", "ssl", "selectors"}
    assert not imported & CLIENT_IO_MODULES


# -- real servers, real processes ---------------------------------------------------------------------


async def register(server: Server, *names: str) -> dict[str, str]:
    """Register users over HTTP, one after the other; their access tokens."""
    return {name: await registered_token(server.port, name, PASSWORD) for name in names}


class Peer:
    """Another user, on the `websockets` library: joins, says, asks for history."""

    def __init__(self, ws: PeerConnection) -> None:
        self.ws = ws

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, server: Server, token: str) -> AsyncIterator[Peer]:
        headers = {"Authorization": f"Bearer {token}"}
        async with ws_connect(
            f"ws://127.0.0.1:{server.port}/ws", additional_headers=headers
        ) as ws:
            yield cls(ws)

    async def wait_for(self, kind: str, **fields: object) -> dict:
        async with asyncio.timeout(WAIT_S):
            while True:
                got = json.loads(await self.ws.recv())
                if got["type"] == kind and all(
                    got.get(name) == value for name, value in fields.items()
                ):
                    return got

    async def join(self, room: str) -> None:
        await self.ws.send(json.dumps({"type": "join", "room": room}))
        await self.wait_for("joined", room=room)

    async def say(self, room: str, text: str) -> int:
        ref = f"peer-{text}"
        await self.ws.send(
            json.dumps({"type": "say", "room": room, "text": text, "ref": ref})
        )
        return (await self.wait_for("ack", ref=ref))["id"]

    async def history(self, room: str) -> list[dict]:
        """The room's history (members only: this joins it first)."""
        await self.join(room)
        await self.ws.send(json.dumps({"type": "history", "room": room}))
        return (await self.wait_for("history", room=room))["messages"]


def spawn_chat(*args: str, password: str | None = PASSWORD) -> pexpect.spawn:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "rawws", "chat", *args],
        env=client_env(password),
        encoding="utf-8",
        timeout=WAIT_S,
        dimensions=(24, 160),
    )
    child.logfile_read = (
        io.StringIO()
    )  # everything it printed, to count lines afterwards
    return child


def output_of(child: pexpect.spawn) -> str:
    return child.logfile_read.getvalue()


async def expect(child: pexpect.spawn, text: str) -> None:
    await asyncio.to_thread(child.expect_exact, text)


async def type_line(child: pexpect.spawn, line: str) -> None:
    child.send(line + "\r")
    await expect(
        child, line
    )  # the editor echoed it: the next expectation looks past it


async def finish(child: pexpect.spawn) -> int:
    await asyncio.to_thread(child.expect, pexpect.EOF)
    await asyncio.to_thread(child.close)
    return child.exitstatus


@contextlib.asynccontextmanager
async def two_terminals(
    start_server: StartServer,
) -> AsyncIterator[tuple[pexpect.spawn, pexpect.spawn]]:
    """`rawws chat` as ada and as bob on one fresh server, each in the lobby; at the end
    both printed no traceback, and both quit with Ctrl-D, exit 0."""
    server = await start_server()
    await register(server, "ada", "bob")
    base = f"ws://127.0.0.1:{server.port}"
    ada = spawn_chat("--user", "ada", base)
    bob = spawn_chat("--user", "bob", base)
    try:
        await expect(ada, "* joined lobby")
        await expect(bob, "* joined lobby")
        yield ada, bob
        for child in (ada, bob):
            assert re.search(r"\bTraceback\b", output_of(child)) is None
            child.sendcontrol("d")
        assert [await finish(ada), await finish(bob)] == [EXIT_OK, EXIT_OK]
    finally:
        for child in (ada, bob):
            child.terminate(force=True)


async def make_private_room(child: pexpect.spawn, label: str = "den") -> str:
    """`/create LABEL private` typed in ``child``: the room's name, as the terminal said it."""
    await type_line(child, f"/create {label} private")
    await asyncio.to_thread(
        child.expect, rf"\* made private room ({label}\.[a-z0-9]{{8}}), yours"
    )
    return str(child.match.group(1))


async def rawws(
    *args: str, stdin: bytes | None = None, password: str | None = PASSWORD
) -> tuple[int, str, str]:
    """``tests.support.helpers.rawws``, logged in as the test users are unless told otherwise."""
    return await run_rawws(*args, stdin=stdin, password=password, wait=WAIT_S)


async def test_two_users_chat_join_who_and_history_in_terminals(
    start_server: StartServer,
):
    """Each reads a room from their join on, so the one whose history is asked for (ada)
    joins each room after bob: her history then holds exactly what was said after it."""
    server = await start_server()
    await register(server, "ada", "bob")
    base = f"ws://127.0.0.1:{server.port}"
    bob = spawn_chat("--user", "bob", f"http://127.0.0.1:{server.port}")
    ada: pexpect.spawn | None = None
    try:
        await expect(bob, "* joined lobby; here: bob")
        ada = spawn_chat("--user", "ada", base)  # after bob: he sees her join
        await expect(ada, f"connected to {base}/ws as ada")
        await expect(ada, "* joined lobby; here: ")
        await expect(bob, "* ada joined lobby")

        await type_line(ada, "hi")
        await expect(ada, "[lobby] ada: hi")
        await expect(bob, "[lobby] ada: hi")
        await type_line(bob, "hello ada")
        await expect(ada, "[lobby] bob: hello ada")
        await expect(bob, "[lobby] bob: hello ada")

        await type_line(bob, "/join dev")
        await expect(bob, "* joined dev")
        await type_line(ada, "/join dev")
        await expect(ada, "* joined dev")
        await expect(bob, "* ada joined dev")
        await type_line(ada, "in dev now")
        await expect(bob, "[dev] ada: in dev now")

        await type_line(ada, "/who")
        await asyncio.to_thread(ada.expect, r"\* in dev: ([a-z, ]+)")
        assert sorted(ada.match.group(1).split(", ")) == ["ada", "bob"]
        await type_line(ada, "/rooms")
        await expect(ada, "* rooms: lobby, dev (current)")
        await type_line(ada, "/history 5")
        await expect(ada, "* the last 1 message of dev:")
        await expect(ada, "[dev] ada: in dev now")
        await type_line(ada, "/join lobby")
        await expect(ada, "* talking in lobby")
        await type_line(ada, "/history")
        await expect(ada, "* the last 2 messages of lobby:")
        await expect(ada, "[lobby] ada: hi")
        await expect(ada, "[lobby] bob: hello ada")
        await type_line(ada, "/leave dev")
        await expect(ada, "* left dev")
        await expect(bob, "* ada left dev")
        await type_line(ada, "/nope")
        await expect(ada, "! unknown command /nope")

        ada.sendcontrol("d")
        bob.send("/quit\r")
        assert await finish(ada) == EXIT_OK
        assert await finish(bob) == EXIT_OK
    finally:
        bob.terminate(force=True)
        if ada is not None:
            ada.terminate(force=True)
    for child in (ada, bob):
        printed = output_of(child)
        assert (
            "ticket" not in printed
            and "token" not in printed
            and PASSWORD not in printed
        )
        assert "Traceback" not in printed


async def test_password_is_asked_on_the_terminal_and_never_shown(
    start_server: StartServer,
):
    server = await start_server()
    await register(server, "ada")
    child = spawn_chat("--user", "ada", f"ws://127.0.0.1:{server.port}", password=None)
    try:
        await expect(child, "password for ada: ")
        child.sendline(PASSWORD)
        await expect(child, "* joined lobby")
        child.sendcontrol("c")  # Ctrl-C in the chat: a normal close, like /quit
        assert await finish(child) == EXIT_OK
    finally:
        child.terminate(force=True)
    assert PASSWORD not in output_of(child)


async def test_reconnect_recovers_every_missed_message_exactly_once(
    start_server: StartServer,
):
    """The server goes away while ada's client is frozen; bob talks meanwhile on a new server
    (same data, same port); ada's client comes back, reconnects and prints each missed message once."""
    first = await start_server(shutdown_timeout_s=0.5)
    data_dir, port = first.config.data_dir, first.port
    tokens = await register(first, "ada", "bob")
    ada = spawn_chat(
        "--user",
        "ada",
        f"ws://127.0.0.1:{port}",
        "--reconnect-attempts",
        "100",
        *FAST_RECONNECT,
    )
    stopped = False
    try:
        await expect(ada, "* joined lobby")
        async with Peer.open(first, tokens["bob"]) as bob:
            await bob.join("lobby")
            before = await bob.say("lobby", "before the drop")
        await expect(ada, "[lobby] bob: before the drop")

        os.kill(
            ada.pid, signal.SIGSTOP
        )  # frozen: it cannot notice anything until it is continued
        stopped = True
        await first.shutdown()
        second = await start_server(data_dir=data_dir, port=port)
        async with Peer.open(second, tokens["bob"]) as bob:
            await bob.join("lobby")
            missed = [await bob.say("lobby", f"missed {n}") for n in (1, 2, 3)]
            # the next ids after the last one ada saw (bob's second join stores nothing)
            assert missed == [before + 1, before + 2, before + 3]
            os.kill(ada.pid, signal.SIGCONT)
            stopped = False
            await expect(ada, "* reconnected; rejoining lobby")
            for n in (1, 2, 3):
                await expect(ada, f"[lobby] bob: missed {n}")
            await bob.say("lobby", "live again")
            await expect(ada, "[lobby] bob: live again")
        await type_line(ada, "back")
        await expect(ada, "[lobby] ada: back")
        ada.send("/quit\r")
        assert await finish(ada) == EXIT_OK
    finally:
        if stopped:
            os.kill(ada.pid, signal.SIGCONT)
        ada.terminate(force=True)
    printed = output_of(ada)
    for text in ("before the drop", "missed 1", "missed 2", "missed 3", "live again"):
        assert printed.count(f"[lobby] bob: {text}") == 1, text
    assert printed.count("[lobby] ada: back") == 1


async def test_reconnecting_gives_up_after_the_attempts_allowed(
    start_server: StartServer,
):
    server = await start_server()
    await register(server, "ada")
    child = spawn_chat(
        "--user",
        "ada",
        f"ws://127.0.0.1:{server.port}",
        "--reconnect-attempts",
        "2",
        *FAST_RECONNECT,
    )
    try:
        await expect(child, "* joined lobby")
        await server.shutdown()
        await expect(
            child, "! connection lost (1001 server shutting down); reconnecting"
        )
        await expect(child, "! attempt 2 of 2")
        await expect(child, "gave up reconnecting after 2 attempts")
        assert await finish(child) == EXIT_CLOSED_WITH_ERROR
    finally:
        child.terminate(force=True)
    # one line per attempt, which says why the one before it failed
    attempts = [line for line in output_of(child).splitlines() if "attempt " in line]
    assert len(attempts) == 2, attempts
    assert "reconnecting failed" not in output_of(child)
    assert re.search(r"! attempt 2 of 2 in [\d.]+s \(attempt 1: .+\)", attempts[1])


async def test_a_drop_with_reconnecting_off_ends_the_chat(start_server: StartServer):
    server = await start_server()
    await register(server, "ada")
    child = spawn_chat(
        "--user", "ada", f"ws://127.0.0.1:{server.port}", "--reconnect-attempts", "0"
    )
    try:
        await expect(child, "* joined lobby")
        await server.shutdown()
        await expect(child, "connection closed: 1001")
        assert await finish(child) == EXIT_OK  # 1001 is a normal close
    finally:
        child.terminate(force=True)


async def test_chat_with_a_wrong_password_exits_4_without_showing_it(
    start_server: StartServer,
):
    server = await start_server()
    await register(server, "ada")
    code, out, err = await rawws(
        "chat", "--user", "ada", f"ws://127.0.0.1:{server.port}", password="wrong pass"
    )
    assert code == EXIT_REFUSED
    assert "login refused: HTTP 401: invalid username or password" in err
    assert "wrong pass" not in out + err and "Traceback" not in err


async def test_chat_url_with_a_token_speaks_the_protocol_from_a_pipe(
    start_server: StartServer,
):
    """Piped stdin: the lines are said; at the end of input the client waits for the acks, then closes."""
    server = await start_server()
    tokens = await register(server, "ada")
    url = f"ws://127.0.0.1:{server.port}/ws?token={tokens['ada']}"
    code, out, err = await rawws(
        "chat", url, stdin=b"/join dev\nfrom a pipe\n", password=None
    )
    assert code == EXIT_OK, err
    assert tokens["ada"] not in out + err
    assert "\x1b" not in out
    async with Peer.open(server, tokens["ada"]) as peer:
        assert [m["text"] for m in await peer.history("dev")] == ["from a pipe"]


async def test_send_with_user_says_in_the_room_and_it_is_in_the_history(
    start_server: StartServer,
):
    """bob joins dev and the lobby first (a member reads from their join on); ada's sends
    join each room (her `joined`, which bob's history lists in its place) and say in it."""
    server = await start_server()
    tokens = await register(server, "ada", "bob")
    async with Peer.open(server, tokens["bob"]) as bob:
        await bob.join("dev")
        await bob.join("lobby")
    code, out, err = await rawws(
        "send",
        "--user",
        "ada",
        "--room",
        "dev",
        f"http://127.0.0.1:{server.port}",
        "shipped it",
    )
    assert (code, out, err) == (EXIT_OK, "", "")
    code, _, err = await rawws(
        "send",
        "-u",
        "ada",
        f"ws://127.0.0.1:{server.port}/ws",
        "-",
        stdin=b"from stdin\n",
    )
    assert (code, err) == (EXIT_OK, "")
    async with Peer.open(server, tokens["bob"]) as bob:
        dev = await bob.history("dev")
        lobby = await bob.history("lobby")
    assert [entry_of(m) for m in dev] == [
        ("member", "ada", "joined"),
        ("message", "ada", "shipped it"),
    ]
    assert [entry_of(m) for m in lobby] == [
        ("member", "ada", "joined"),
        ("message", "ada", "from stdin"),
    ]


def entry_of(entry: dict) -> tuple[str, str, str]:
    """A history entry in short: a message's type, user and text; a member event's type, user and event."""
    return (
        entry["type"],
        entry["user"],
        entry["text" if entry["type"] == "message" else "event"],
    )


async def test_send_with_user_exits_7_when_the_store_fails(start_server: StartServer):
    server = await start_server()
    await register(server, "ada")

    async def broken(batch):
        raise RuntimeError("disk on fire")

    chat_handler(server).writer.store.append_messages = broken  # type: ignore[method-assign]
    code, _, err = await rawws(
        "send", "--user", "ada", f"ws://127.0.0.1:{server.port}", "will not stick"
    )
    assert code == EXIT_NOT_STORED
    assert (
        err.strip()
        == "rawws: message not stored in lobby: message not stored; send it again (unavailable)"
    )


@pytest.mark.parametrize(
    "args",
    [
        (
            "send",
            "--room",
            "dev",
            "ws://127.0.0.1:1/echo",
            "hi",
        ),  # --room without --user
        ("send", "--user", "ada", "--room", "Not A Room", "ws://127.0.0.1:1", "hi"),
        ("send", "--user", "ada", "ws://127.0.0.1:1", "   "),
        ("send", "--user", "ada", "--binary", "ws://127.0.0.1:1", "hi"),
        ("send", "--user", "ada", "ws://127.0.0.1:1/ws?token=x", "hi"),
        ("chat", "--user", "ada", "ftp://127.0.0.1:1"),
    ],
)
async def test_client_usage_errors_exit_2(args: tuple[str, ...]):
    code, _, err = await rawws(*args)
    assert code == EXIT_USAGE, err
    assert err.startswith("rawws: ") or "error:" in err


async def test_send_without_a_password_source_says_how_to_give_one():
    code, _, err = await rawws(
        "send", "--user", "ada", "ws://127.0.0.1:1", "hi", password=None
    )
    assert code == EXIT_USAGE
    assert (
        err.strip()
        == "rawws: no terminal to ask for ada's password on: set RAWWS_PASSWORD"
    )


async def test_a_message_cannot_fake_lines_or_turn_text_around_in_the_terminal(
    start_server: StartServer,
):
    """Another user's text prints on its own line with its controls escaped: no fake line, no reversed text."""
    server = await start_server()
    tokens = await register(server, "ada", "bob")
    ada = spawn_chat("--user", "ada", f"ws://127.0.0.1:{server.port}")
    fake = "hi\n12:00 [lobby] alice: fake line\x1b[2J"
    reversed_name = "see report\u202efdp.exe"
    try:
        await expect(ada, "* joined lobby")
        async with Peer.open(server, tokens["bob"]) as bob:
            await bob.join("lobby")
            await expect(ada, "* bob joined lobby")
            for ref, text in (("fake", fake), ("bidi", reversed_name)):
                frame = {"type": "say", "room": "lobby", "text": text, "ref": ref}
                await bob.ws.send(json.dumps(frame))
                await bob.wait_for("ack", ref=ref)
            await expect(
                ada, "[lobby] bob: hi\\n12:00 [lobby] alice: fake line\\x1b[2J"
            )
            await expect(ada, "[lobby] bob: see report\\u202efdp.exe")
        ada.send("/quit\r")
        assert await finish(ada) == EXIT_OK
    finally:
        ada.terminate(force=True)
    printed = output_of(ada)
    lines = printed.replace("\r\n", "\n").split("\n")
    assert not any(line.startswith("12:00 [lobby] alice") for line in lines)
    assert "\x1b[2J" not in printed and "\u202e" not in printed
