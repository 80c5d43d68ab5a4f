"""The product study's readers and its publisher: the chat's own /ws, /sse and /poll, every byte counted by kind.

Each reader is one chat session of a real `rawws serve`, on its own keep-alive
TCP connection (its ``POST /send`` commands, for /sse and /poll, on a second
short one). Bytes are sorted as they cross the client's sockets:

* ``setup``: what opens the session and joins the room, once (the upgrade or
  the first request and its answer head, ``welcome``, ``session``,
  ``joined``, the ``join`` command and its ``POST /send``); kept apart from
  the per-message figures, as the overhead study spreads its upgrade.
* ``payload``: the JSON text of each ``message`` event of the feed, the same
  bytes on every transport.
* ``http_request`` / ``http_response_head``: every later poll's request and
  answer head (and the SSE stream's own, in ``setup``).
* ``framing``: what wraps the payload: a WebSocket frame header; SSE's
  ``data: `` prefix, ``id:`` line and blank lines plus HTTP/1.1 chunk sizes;
  a poll answer's JSON envelope (``session``, ``cursor``, ``position``,
  the ``events`` array's brackets and commas).
* ``keepalive``: WebSocket ping and pong frames, SSE heartbeat comments.
* ``other_events``: any other event after the join (presence, acks) with its
  framing.

The simulated one-way delay is the overhead study's: a reader sleeps before
every write and counts every read as arriving that much later.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import time
from typing import Any

from experiments.overhead.common import HOST
from experiments.overhead.users import Counter, _open, tcp_segments
from testkit import masked_frame

ROOM = "feed"
WORDS = (
    "the build is green again after the flaky test fix so I merged the branch "
    "can someone look at the deploy logs lunch at noon works for me "
    "I pushed a draft of the release notes please read them before Friday "
    "thanks that was it the cache was stale"
).split()


def feed_text(seq: int, rng: random.Random) -> str:
    """A chat line of a realistic length (20–200 characters), tagged with its sequence number."""
    target = rng.choice((20, 35, 50, 60, 80, 100, 120, 160, 200))
    words = [f"#{seq:05d}"]
    while sum(len(w) + 1 for w in words) < target:
        words.append(rng.choice(WORDS))
    return " ".join(words)[:target]


def _seq(event: dict[str, Any]) -> int | None:
    text = event.get("text")
    if event.get("type") != "message" or event.get("room") != ROOM:
        return None
    if not isinstance(text, str) or not text.startswith("#"):
        return None
    return int(text[1:6])


def request_head(
    method: str, target: str, port: int, token: str, body: bytes = b""
) -> bytes:
    """What a script (or the JavaScript client) sends: request line, Host, the bearer token."""
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: {HOST}:{port}",
        f"Authorization: Bearer {token}",
    ]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_http(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One HTTP/1.1 answer with a Content-Length: its head and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return head, body


async def send_commands(
    port: int,
    token: str,
    session: str,
    commands: list[dict[str, Any]],
    counter: SessionCounter,
) -> None:
    """``POST /send`` on its own connection, counted as the session's setup (its segments too)."""
    reader, writer, sock, segs0 = await _open(port)
    body = json.dumps({"session": session, "commands": commands}).encode()
    request = request_head("POST", "/send", port, token, body)
    writer.write(request)
    head, answer = await _read_http(reader)
    if not head.startswith(b"HTTP/1.1 202"):
        raise RuntimeError(f"/send answered {head.splitlines()[0]!r} {answer[:200]!r}")
    counter.add("setup", len(request) + len(head) + len(answer))
    counter.setup_segments += tcp_segments(sock) - segs0
    writer.close()


def split_events(body: bytes) -> tuple[dict[str, Any], list[tuple[int, int]]]:
    """A poll answer, and the byte span of each event in it as the server wrote it."""
    answer = json.loads(body)
    text = body.decode()
    start = text.index('"events"')
    pos = text.index("[", start) + 1
    decoder = json.JSONDecoder()
    spans = []
    for _ in answer["events"]:
        while text[pos] in " ,\n\r\t":
            pos += 1
        _, end = decoder.raw_decode(text, pos)
        spans.append((len(text[:pos].encode()), len(text[:end].encode())))
        pos = end
    return answer, spans


class SessionCounter(Counter):
    """The overhead study's counter, with the segments of the session's setup kept apart."""

    def __init__(self, method: str, headers: str) -> None:
        super().__init__(method, headers)
        self.setup_segments = 0
        self.steady_segments0 = (
            0  # the socket's segment count when the join was answered
        )


class Reader:
    """What every transport's reader shares: its counter, its delay, whether it has joined."""

    def __init__(
        self,
        counter: SessionCounter,
        port: int,
        token: str,
        *,
        delay: float,
        end: float,
    ) -> None:
        self.counter = counter
        self.port = port
        self.token = token
        self.delay = delay
        self.end = end
        self.joined = asyncio.Event()

    def event(self, raw: bytes, framing: int, arrived: int) -> None:
        """One event's JSON text (``raw``) and the bytes that framed it, sorted by what it is."""
        obj = json.loads(raw)
        seq = _seq(obj)
        if not self.joined.is_set():
            self.counter.add("setup", len(raw) + framing)
            if obj.get("type") == "joined" and obj.get("room") == ROOM:
                self.joined.set()
        elif seq is None:
            self.counter.add("other_events", len(raw) + framing)
        else:
            self.counter.add("payload", len(raw))
            self.counter.add("framing", framing)
            self.counter.deliver([seq], arrived)


async def ws_reader(r: Reader) -> None:
    loop = asyncio.get_running_loop()
    c = r.counter
    reader, writer, sock, segs0 = await _open(r.port)
    key = base64.b64encode(os.urandom(16)).decode()
    upgrade = (
        f"GET /ws HTTP/1.1\r\nHost: {HOST}:{r.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {r.token}\r\n\r\n"
    ).encode()
    await asyncio.sleep(r.delay)
    writer.write(upgrade)
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"upgrade refused: {head.splitlines()[0]!r}")
    join = masked_frame(0x1, json.dumps({"type": "join", "room": ROOM}).encode())
    writer.write(join)
    c.add("setup", len(upgrade) + len(head) + len(join))
    delay_ns = int(r.delay * 1e9)
    try:
        while (remaining := r.end - loop.time()) > 0:
            try:
                first = await asyncio.wait_for(reader.readexactly(2), remaining)
            except TimeoutError:
                break
            opcode, n, hdr = first[0] & 0x0F, first[1] & 0x7F, 2
            if n == 126:
                n, hdr = int.from_bytes(await reader.readexactly(2), "big"), 4
            elif n == 127:
                n, hdr = int.from_bytes(await reader.readexactly(8), "big"), 10
            payload = await reader.readexactly(n) if n else b""
            arrived = time.monotonic_ns() + delay_ns
            if opcode == 0x1:
                was_joined = r.joined.is_set()
                r.event(payload, hdr, arrived)
                if not was_joined and r.joined.is_set():
                    c.setup_segments = tcp_segments(sock) - segs0
                    c.steady_segments0 = tcp_segments(sock)
            elif opcode == 0x9:  # answered at once (a delayed pong would only shift it)
                pong = masked_frame(0xA, payload)
                writer.write(pong)
                c.pings += 1
                c.add("keepalive", hdr + n + len(pong))
            elif opcode == 0x8:
                break
    finally:
        c.segments += tcp_segments(sock) - (c.steady_segments0 or segs0)
        writer.close()


async def sse_reader(r: Reader) -> None:
    loop = asyncio.get_running_loop()
    c = r.counter
    reader, writer, sock, segs0 = await _open(r.port)
    request = request_head("GET", "/sse", r.port, r.token)
    await asyncio.sleep(r.delay)
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"/sse answered {head.splitlines()[0]!r}")
    c.add("setup", len(request) + len(head))
    chunked = b"transfer-encoding: chunked" in head.lower()
    delay_ns = int(r.delay * 1e9)
    buffer = b""
    pending_chunk_framing = 0
    joining: asyncio.Task[None] | None = None
    try:
        while (remaining := r.end - loop.time()) > 0:
            try:
                if chunked:
                    size_line = await asyncio.wait_for(
                        reader.readuntil(b"\r\n"), remaining
                    )
                    size = int(size_line.split(b";")[0], 16)
                    data = (await reader.readexactly(size + 2))[:-2]
                    pending_chunk_framing += len(size_line) + 2
                    if size == 0:
                        break
                else:
                    data = await asyncio.wait_for(reader.read(65536), remaining)
                    if not data:
                        break
            except TimeoutError:
                break
            arrived = time.monotonic_ns() + delay_ns
            buffer += data
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                framing = len(block) + 2 + pending_chunk_framing
                pending_chunk_framing = 0
                data_lines = [
                    line[5:].lstrip(b" ")
                    for line in block.split(b"\n")
                    if line.startswith(b"data:")
                ]
                if not data_lines:  # a comment (heartbeat) or the retry line
                    c.add("keepalive" if r.joined.is_set() else "setup", framing)
                    continue
                raw = b"\n".join(data_lines)
                obj = json.loads(raw)
                if obj.get("type") == "session" and joining is None:
                    command = {"type": "join", "room": ROOM}
                    joining = loop.create_task(
                        send_commands(r.port, r.token, obj["session"], [command], c)
                    )
                was_joined = r.joined.is_set()
                r.event(raw, framing - len(raw), arrived)
                if not was_joined and r.joined.is_set():
                    c.setup_segments += tcp_segments(sock) - segs0
                    c.steady_segments0 = tcp_segments(sock)
    finally:
        c.segments += tcp_segments(sock) - (c.steady_segments0 or segs0)
        writer.close()
        if joining is not None:
            await joining


async def poll_reader(
    r: Reader, *, interval: float | None, wait: float, offset: float
) -> None:
    """Long polling (``interval`` None: the next poll as soon as an answer is in) or short polling."""
    loop = asyncio.get_running_loop()
    c = r.counter
    reader, writer, sock, segs0 = await _open(r.port)
    delay_ns = int(r.delay * 1e9)
    session = ""
    cursor = 0
    next_tick = loop.time() + offset
    try:
        while loop.time() < r.end:
            if not session:
                target = "/poll"
            else:
                target = f"/poll?session={session}&ack={cursor}&wait={wait:g}"
                if interval is not None and r.joined.is_set():
                    await asyncio.sleep(max(0.0, next_tick - loop.time()))
                    next_tick += interval
                    if loop.time() >= r.end:
                        break
            request = request_head("GET", target, r.port, r.token)
            await asyncio.sleep(r.delay)  # upstream
            writer.write(request)
            try:
                head, body = await asyncio.wait_for(
                    _read_http(reader), max(0.1, r.end - loop.time() + 2 * r.delay + 1)
                )
            except TimeoutError:
                c.requests += 1
                c.add("http_request", len(request))
                break  # a long poll still open when the run ends: its request is counted, nothing came back
            arrived = time.monotonic_ns() + delay_ns  # downstream
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(
                    f"/poll answered {head.splitlines()[0]!r} {body[:200]!r}"
                )
            answer, spans = split_events(body)
            if r.joined.is_set():
                c.requests += 1
                c.add("http_request", len(request))
                c.add("http_response_head", len(head))
                c.add("framing", len(body) - sum(b - a for a, b in spans))
                if not spans:
                    c.empty_responses += 1
            else:
                c.add(
                    "setup",
                    len(request) + len(head) + len(body) - sum(b - a for a, b in spans),
                )
            for a, b in spans:
                r.event(body[a:b], 0, arrived)
            if r.joined.is_set() and not c.steady_segments0:
                c.setup_segments += tcp_segments(sock) - segs0
                c.steady_segments0 = tcp_segments(sock)
            if not session:
                session = answer["session"]
                await send_commands(
                    r.port, r.token, session, [{"type": "join", "room": ROOM}], c
                )
            cursor = answer["cursor"]
            await asyncio.sleep(r.delay)  # the answer is not there before this
    finally:
        c.segments += tcp_segments(sock) - (c.steady_segments0 or segs0)
        writer.close()
