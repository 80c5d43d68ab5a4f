"""`rawws chat --user` paces itself to the server's rate and never drops a typed line.

The server drops, unread, every frame over its rate (``message_burst`` at once,
``messages_per_s`` after): a client that sends piped lines as fast as it reads
them lost 19 of 30 (issue 22). First the sans-I/O parts (the bucket, the book of
says sent again), then a real `rawws serve` process fed 100 piped lines by a
real `rawws chat` process: all 100 stored, in order, once each.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect

from rawws.chat import wire
from rawws.chatclient import pacing
from rawws.chatclient.commands import SayLine
from rawws.chatclient.pacing import Pacer, RateLimits
from rawws.chatclient.reconnect import Backoff
from rawws.chatclient.says import MAX_TRIES, Says
from rawws.chatclient.session import chat_session
from rawws.chatclient.state import ChatState
from rawws.chatclient.terminal import EndOfInput, InputAction, Submit
from rawws.cli import EXIT_OK
from rawws.client.connect import connect
from rawws.core.ratelimit import RateLimiter
from tests.conftest import StartServer
from tests.support.helpers import PASSWORD, rawws, registered_token
from tests.support.nodes import start_node

LINES = 100
RUN_S = (
    90.0  # the bound on the client's run: 100 lines at the default rate take about 11 s
)


# -- the bucket ----------------------------------------------------------------------------


def frames_sent_by(pacer: Pacer, until: float, step: float = 0.001) -> list[float]:
    """When a sender that always has a frame to send sends, stepping a fake clock."""
    times, now = [], 0.0
    while now <= until:
        if pacer.delay(now) == 0.0:
            pacer.take(now)
            times.append(now)
        else:
            now += step
    return times


def test_the_pace_stays_inside_the_servers_bucket_with_a_margin():
    """Half the burst at once, then nine tenths of the rate: the server's own limiter,
    fed the same times, never refuses one, and keeps half its burst to spare."""
    limits = RateLimits(messages_per_s=10.0, message_burst=20)
    times = frames_sent_by(Pacer(limits), until=10.0)
    assert times[:10] == [0.0] * 10 and times[10] > 0.0
    assert 95 <= len(times) <= 10 + 9 * 10 + 1
    server = RateLimiter(
        limits.message_burst, limits.message_burst / limits.messages_per_s
    )
    assert all(server.acquire("c", t) == 0.0 for t in times)
    # the server's bucket still holds at least the half of the burst we left it
    assert server.acquire("c", times[-1]) == 0.0
    spare = sum(server.acquire("c", times[-1]) == 0.0 for _ in range(20))
    assert spare >= 8


def test_before_the_welcome_one_frame_goes_and_the_welcome_counts_it():
    """The first join goes at once (a URL that is not the chat answers it); the next
    waits for the welcome's figures, which count the frame already sent."""
    pacer = Pacer(now=0.0)
    assert pacer.delay(0.0) == 0.0
    pacer.take(0.0)
    assert pacer.delay(0.0) > 0.0  # figures unknown: no second frame yet
    pacer.configure(RateLimits(messages_per_s=1.0, message_burst=4), now=0.0)
    assert pacer.delay(0.0) == 0.0  # half of 4 at once, one of them spent
    pacer.take(0.0)
    assert pacer.delay(0.0) == 1.0 / 0.9  # then 0.9 a second
    pacer.reset(5.0)  # a new connection: the server's bucket is new too
    assert pacer.delay(5.0) == 0.0 and pacer.sent == 0


def test_welcome_limits_are_read_and_nonsense_is_not():
    good = wire.limits(32, 2.5, 7)
    assert RateLimits.from_welcome(good) == RateLimits(2.5, 7)
    for bad in (None, {}, {"messages_per_s": 0, "message_burst": 5},
                {"messages_per_s": True, "message_burst": 5},
                {"messages_per_s": float("inf"), "message_burst": 5},
                {"messages_per_s": 1, "message_burst": "5"}):  # fmt: skip
        assert RateLimits.from_welcome(bad) is None


# -- the book of says --------------------------------------------------------------------------


def say_ref(frame: str) -> str:
    return str(json.loads(frame)["ref"])


def test_an_ack_after_a_drop_proves_the_earlier_says_in_doubt_were_dropped():
    says = Says(itertools.count(1))
    frames = [says.new("lobby", f"line {n}") for n in range(4)]
    for frame in frames:
        says.on_sent(frame)
    says.acked(say_ref(frames[0]))
    assert says.rate_limited()
    # the server answers says in the order it read them: 3 stored means 1 and 2 were dropped
    again = says.acked(say_ref(frames[3]))
    assert [say.text for say in again] == ["line 1", "line 2"]
    assert says.pending == {} and not says.in_doubt


def test_says_in_doubt_a_while_after_their_drop_are_sent_again_and_queued_ones_are_not():
    says = Says(itertools.count(1))
    sent = says.new("lobby", "sent")
    says.new("lobby", "still queued")
    says.on_sent(sent)
    says.rate_limited()
    later = says.new("lobby", "sent later")
    says.on_sent(later)
    says.rate_limited()  # a second drop: its says wait their own while
    assert [say.text for say in says.settle(upto=1)] == ["sent"]
    assert [say.text for say in says.pending.values()] == ["still queued", "sent later"]
    assert [say.text for say in says.settle(upto=2)] == ["sent later"]


def test_a_say_is_tried_at_most_max_tries_times():
    state = ChatState("lobby")
    state.on_connected()
    frame = state.command(SayLine("stubborn")).send[0]
    for attempt in range(1, MAX_TRIES + 1):
        state.mark_sent(frame)
        error = {
            "type": "error",
            "code": "unavailable",
            "message": "no",
            "ref": say_ref(frame),
        }
        out = state.receive(json.dumps(error))
        if attempt < MAX_TRIES:
            assert out.show == [] and len(out.resend) == 1
            assert json.loads(out.resend[0])["text"] == "stubborn"
            frame = out.resend[0]
        else:
            assert out.resend == []
            assert out.show == [
                f"! not stored in lobby after {MAX_TRIES} tries: “stubborn”"
            ]
    assert state.pending == {}


def test_says_never_sent_wait_for_the_next_connection_and_sent_ones_are_reported():
    state = ChatState("lobby")
    state.on_connected()
    sent = state.command(SayLine("on the wire")).send[0]
    state.command(SayLine("still queued"))
    state.mark_sent(sent)
    gone = state.on_disconnected().show
    assert len(gone) == 1 and "on the wire" in gone[0]
    again = state.on_connected().send
    assert [json.loads(frame)["type"] for frame in again] == ["join", "say"]
    assert json.loads(again[1])["text"] == "still queued"


# -- a real server, a real client, a pipe ---------------------------------------------------


async def history_texts(port: int, token: str) -> list[str]:
    async with ws_connect(
        f"ws://127.0.0.1:{port}/ws",
        additional_headers={"Authorization": f"Bearer {token}"},
    ) as ws:
        await ws.send(json.dumps({"type": "join", "room": "lobby"}))
        while json.loads(await ws.recv())["type"] != "joined":
            pass
        await ws.send(json.dumps({"type": "history", "room": "lobby", "limit": 200}))
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "history":
                return [
                    m["text"]
                    for m in frame["messages"]
                    if m.get("type", "message") == "message"
                ]


async def test_every_piped_line_is_stored_once_in_order(tmp_path: Path):
    """100 lines piped into `rawws chat` against `rawws serve` at its default rate (10/s,
    bursts of 20): every one is in the room's history, in order, once. Sent unpaced, the
    server drops most of them (and the ones sent again land out of order)."""
    node = await start_node(tmp_path, port=0)
    try:
        token = await registered_token(node.port, "ada", PASSWORD)
        lines = [f"line {n:03d}" for n in range(LINES)]
        code, out, err = await rawws(
            "chat", "--user", "ada", f"ws://127.0.0.1:{node.port}",
            stdin="".join(line + "\n" for line in lines).encode(),
            password=PASSWORD, wait=RUN_S,
        )  # fmt: skip
        assert code == EXIT_OK, err
        assert "not stored" not in out + err and "slow down" not in out
        assert await history_texts(node.port, token) == lines
    finally:
        await node.stop()


# -- when the pace is wrong anyway: what the server dropped is sent again -------------------------


class PipedTerminal:
    """Stands in for a pipe: the lines, then the end of input; what is shown is kept."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.shown: list[str] = []

    def start(self, on_input: Callable[[InputAction], None]) -> None:
        for line in self.lines:
            on_input(Submit(line))
        on_input(EndOfInput())

    def show(self, text: str) -> None:
        self.shown.append(text)

    def stop(self) -> None:
        pass


async def test_lines_the_server_dropped_for_their_rate_are_sent_again(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
):
    """A client that paces itself half again too fast (as a proxy bunching frames would make
    it): the server drops some lines unread and says `rate_limited`; each dropped line is sent
    again (an ack for a later one proves it dropped, or none came a while later), so every
    line is stored exactly once, though a line sent again lands after later ones."""
    server = await start_server(chat_messages_per_s=20.0, chat_message_burst=4)
    token = await registered_token(server.port, "ada", PASSWORD)
    monkeypatch.setattr(pacing, "BURST_SHARE", 1.5)
    monkeypatch.setattr(pacing, "RATE_SHARE", 1.5)
    lines = [f"again {n:02d}" for n in range(30)]
    terminal = PipedTerminal(lines)
    ws = await connect(f"ws://127.0.0.1:{server.port}/ws?token={token}")
    end = await chat_session(
        ws, terminal, ChatState("lobby"), None, Backoff(attempts=0), settle_s=0.3
    )
    assert end.by_user and end.not_stored == 0, terminal.shown
    assert any("lines not stored are sent again" in line for line in terminal.shown)
    stored = await history_texts(server.port, token)
    assert sorted(stored) == lines  # each once
