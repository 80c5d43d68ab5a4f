"""Cheap chat members for ``sessions.py``: asyncio protocols on /ws, /sse and /poll that count deliveries.

A thousand of them share one load process with the publisher, so they parse
as little as they can: a member counts the ``"type":"message"`` marks in the
bytes it reads (a window keeps a mark split over two reads), and notices its
``joined``; an SSE member reads its session id from the first event, a poll
member each answer's length and cursor. The ``join`` of an SSE or poll
session goes through ``Sender``: a few keep-alive connections taking turns
at ``POST /send``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re

from experiments.perfkit import HOST
from testkit import masked_frame

KINDS = ("WebSocket", "SSE", "long polling")
MESSAGE_MARKS = (b'"type":"message"', b'"type": "message"')
JOINED_MARKS = (b'"type":"joined"', b'"type": "joined"')
SESSION = re.compile(rb'"session":\s*"([^"]+)"')
CURSOR = re.compile(rb'"cursor":\s*(\d+)')
LONGPOLL_WAIT = 25


class Tally:
    """A count many members add to, and a wait until it reaches a goal."""

    def __init__(self) -> None:
        self.total = 0
        self._goal: int | None = None
        self._reached = asyncio.Event()

    def add(self, n: int) -> None:
        self.total += n
        if self._goal is not None and self.total >= self._goal:
            self._reached.set()

    async def reach(self, goal: int, timeout: float = 60.0) -> None:
        self._reached.clear()
        self._goal = goal
        if self.total < goal:
            try:
                await asyncio.wait_for(self._reached.wait(), timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"{self.total} of {goal} after {timeout:g} s"
                ) from None


def _head(method: str, target: str, port: int, token: str, body: bytes = b"") -> bytes:
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: {HOST}:{port}",
        f"Authorization: Bearer {token}",
    ]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Sender:
    """``POST /send`` for many sessions over a few keep-alive connections, one request at a time on each."""

    def __init__(self, port: int, token: str, connections: int = 8) -> None:
        self.port = port
        self.token = token
        self.queue: asyncio.Queue[tuple[str, list[dict[str, object]]]] = asyncio.Queue()
        self.errors: list[str] = []
        self._workers = [
            asyncio.get_running_loop().create_task(self._work())
            for _ in range(connections)
        ]

    def send(self, session: str, commands: list[dict[str, object]]) -> None:
        self.queue.put_nowait((session, commands))

    async def _work(self) -> None:
        reader, writer = await asyncio.open_connection(HOST, self.port)
        try:
            while True:
                session, commands = await self.queue.get()
                body = json.dumps({"session": session, "commands": commands}).encode()
                writer.write(_head("POST", "/send", self.port, self.token, body))
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
                answer = await reader.readexactly(length)
                if not head.startswith(b"HTTP/1.1 202"):
                    self.errors.append(f"{head.splitlines()[0]!r} {answer[:200]!r}")
        finally:
            writer.close()

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)


class Member(asyncio.Protocol):
    """One session in the room: counts the messages it is delivered into ``tally``, its join into ``joins``."""

    def __init__(
        self,
        port: int,
        token: str,
        room: str,
        sender: Sender,
        tally: Tally,
        joins: Tally,
    ) -> None:
        self.port, self.token, self.room = port, token, room
        self.sender, self.tally, self.joins = sender, tally, joins
        self.transport: asyncio.Transport | None = None
        self.joined = False
        self.error = ""
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.first_request())

    def first_request(self) -> bytes:
        raise NotImplementedError

    def count(self, data: bytes) -> None:
        window = self._tail + data
        self.tally.add(sum(window.count(mark) for mark in MESSAGE_MARKS))
        if not self.joined and any(mark in window for mark in JOINED_MARKS):
            self.joined = True
            self.joins.add(1)
        self._tail = window[-(len(MESSAGE_MARKS[1]) - 1) :]

    def fail(self, what: str) -> None:
        self.error = what
        self.joins.add(1)  # so a wait for every join ends; the caller reads ``error``
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class WebSocketMember(Member):
    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self._head = b""

    def first_request(self) -> bytes:
        key = base64.b64encode(os.urandom(16)).decode()
        return (
            f"GET /ws HTTP/1.1\r\nHost: {HOST}:{self.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {self.token}\r\n\r\n"
        ).encode()

    def data_received(self, data: bytes) -> None:
        if self._head is not None:
            self._head += data
            if b"\r\n\r\n" not in self._head:
                return
            head, data = self._head.split(b"\r\n\r\n", 1)
            self._head = None  # type: ignore[assignment]
            if not head.startswith(b"HTTP/1.1 101"):
                return self.fail(head.split(b"\r\n")[0].decode())
            assert self.transport is not None
            self.transport.write(
                masked_frame(
                    0x1, json.dumps({"type": "join", "room": self.room}).encode()
                )
            )
        self.count(data)


class SseMember(Member):
    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self._start = b""

    def first_request(self) -> bytes:
        return _head("GET", "/sse", self.port, self.token)

    def data_received(self, data: bytes) -> None:
        if self._start is not None:
            self._start += data
            if not self._start.startswith(b"HTTP/1.1 200") and b"\r\n" in self._start:
                return self.fail(self._start.split(b"\r\n")[0].decode())
            found = SESSION.search(self._start)
            if found is None:
                return
            self._start = None  # type: ignore[assignment]
            self.sender.send(
                found.group(1).decode(), [{"type": "join", "room": self.room}]
            )
        self.count(data)


class PollMember(Member):
    """A long poll always waiting: the next poll goes out as soon as an answer is in."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self._buffer = b""
        self.session = ""

    def first_request(self) -> bytes:
        return _head("GET", "/poll", self.port, self.token)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while b"\r\n\r\n" in self._buffer:
            head, rest = self._buffer.split(b"\r\n\r\n", 1)
            found = re.search(rb"(?i)content-length:\s*(\d+)", head)
            length = int(found.group(1)) if found else 0
            if len(rest) < length:
                return
            body, self._buffer = rest[:length], rest[length:]
            if not head.startswith(b"HTTP/1.1 200"):
                status = head.split(b"\r\n")[0].decode()
                return self.fail(f"{status} {body[:200]!r}")
            self.answered(body)

    def answered(self, body: bytes) -> None:
        self.count(body)
        if not self.session:
            session = SESSION.search(body)
            if session is None:
                return self.fail(f"no session in {body[:200]!r}")
            self.session = session.group(1).decode()
            self.sender.send(self.session, [{"type": "join", "room": self.room}])
        cursor = CURSOR.search(body)
        ack = cursor.group(1).decode() if cursor else "0"
        assert self.transport is not None
        if not self.transport.is_closing():
            target = f"/poll?session={self.session}&ack={ack}&wait={LONGPOLL_WAIT}"
            self.transport.write(_head("GET", target, self.port, self.token))


MEMBERS: dict[str, type[Member]] = {
    "WebSocket": WebSocketMember,
    "SSE": SseMember,
    "long polling": PollMember,
}


async def open_members(
    kind: str,
    port: int,
    token: str,
    room: str,
    n: int,
    sender: Sender,
    tally: Tally,
    batch: int = 100,
) -> list[Member]:
    """``n`` sessions of ``kind``, each joined to ``room`` (a long poll then waiting), opened ``batch`` at a time."""
    loop = asyncio.get_running_loop()
    joins = Tally()
    members: list[Member] = []
    for first in range(0, n, batch):
        made = await asyncio.gather(
            *(
                loop.create_connection(
                    lambda: MEMBERS[kind](port, token, room, sender, tally, joins),
                    HOST,
                    port,
                )
                for _ in range(min(batch, n - first))
            )
        )
        members += [protocol for _, protocol in made]
    await joins.reach(n, timeout=60)
    errors = [m.error for m in members if m.error] + sender.errors
    if errors:
        raise RuntimeError(f"{len(errors)} of {n} {kind} sessions failed: {errors[:3]}")
    return members
