"""Test clients of the chat's other transports (docs/transports.md): Server-Sent Events and long-polling,
each sending its commands with ``POST /send``.

``SseClient`` reads ``GET /sse`` on a raw asyncio stream, taking the chunked
``text/event-stream`` body apart by hand (no library between the test and the
bytes): each event's ``data:`` is kept as parsed JSON in ``frames``, and the
last ``id:`` seen is ``last_event_id``, what a browser's ``EventSource`` would
send back as ``Last-Event-ID``. ``PollClient`` asks ``GET /poll`` again and
again in the background, acknowledging each answer's ``cursor``; the last
answer's ``position`` is what it resumes with.

Both keep every frame they got, in order, and wait for what a test expects
with the same calls as ``ChatClient`` (``wait_frame``, ``of_type``,
``entry_ids``), always within a deadline, so a scenario can be written once
for every transport. ``close`` drops the connection as a client that went away
would: nothing is said to the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tests.support.chat_client import Frame, FrameWaits
from tests.support.helpers import (
    TIMEOUT_S,
    Reply,
    close_writer,
    http,
    open_raw,
    read_http_head,
)

#: How long one poll may wait on the server for something (the spec allows up to 25 s).
POLL_WAIT_S = 10.0


class EventLog(FrameWaits):
    """The frames one session got, in order, and bounded waits on them (``FrameWaits``, as
    ``ChatClient``'s)."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.frames: list[Frame] = []
        #: Why the session's stream or polling ended (None while it goes on).
        self.ended: str | None = None
        self._changed = asyncio.Condition()

    async def _record(self, frames: list[Frame]) -> None:
        for frame in frames:
            assert isinstance(frame, dict) and isinstance(frame.get("type"), str), frame
        self.frames.extend(frames)
        async with self._changed:
            self._changed.notify_all()

    async def _end(self, why: str) -> None:
        if self.ended is None:
            self.ended = why
        async with self._changed:
            self._changed.notify_all()

    def stopped(self) -> str | None:
        return None if self.ended is None else f"session ended ({self.ended})"


class SessionClient(EventLog):
    """A session on ``port`` (its id learnt from the first event) that sends with ``POST /send``."""

    def __init__(self, port: int, token: str, user: str) -> None:
        super().__init__(user)
        self.port = port
        self.token = token
        self.session = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def post_send(self, *commands: Frame) -> Reply:
        """``POST /send`` of ``commands`` for this session, whatever the answer."""
        return await http(
            self.port,
            "POST",
            "/send",
            {"session": self.session, "commands": list(commands)},
            headers=self.auth,
        )

    async def send_many(self, *commands: Frame) -> None:
        """Send ``commands`` in one ``POST /send``, which must take them all (202)."""
        reply = await self.post_send(*commands)
        assert reply.status == 202, f"POST /send: {reply.status} {reply.body!r}"
        assert reply.json == {"accepted": len(commands)}, reply.json

    async def send(self, **command: object) -> None:
        """One command, as ``ChatClient.send`` sends one frame."""
        await self.send_many(command)


# -- Server-Sent Events --------------------------------------------------------------


@dataclass(frozen=True)
class SseEvent:
    data: str
    id: str | None  # the event's own ``id:`` line, if it had one


class SseClient(SessionClient):
    """One ``GET /sse`` stream; see the module. ``events`` keeps each event as it came."""

    def __init__(
        self,
        port: int,
        token: str,
        user: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        headers: dict[str, str],
    ) -> None:
        super().__init__(port, token, user)
        self.headers = headers
        self.events: list[SseEvent] = []
        self.comments: list[str] = []
        self.retry_ms: int | None = None
        #: The last ``id:`` seen: what a browser sends back as ``Last-Event-ID``.
        self.last_event_id = ""
        self._data: list[str] = []  # the event being read
        self._event_id: str | None = None
        self._writer = writer
        self._reader = asyncio.get_running_loop().create_task(self._read(reader))

    @classmethod
    async def open(
        cls,
        port: int,
        token: str,
        user: str,
        *,
        last_event_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> SseClient:
        """A stream that answered 200 and sent its ``session`` event; ``last_event_id`` goes
        in the ``Last-Event-ID`` header."""
        status, response_headers, body, reader, writer = await open_sse(
            port, token, last_event_id=last_event_id, headers=headers
        )
        if status != 200:
            await close_writer(writer)
            raise AssertionError(f"GET /sse: {status} {body!r}")
        assert response_headers.get("transfer-encoding") == "chunked", response_headers
        client = cls(port, token, user, reader, writer, response_headers)
        try:
            first = await client.wait_frame("session")
        except BaseException:
            await client.close()
            raise
        assert first is client.frames[0], client.frames
        client.session = first["session"]
        return client

    async def _read(self, reader: asyncio.StreamReader) -> None:
        lines = SseLines()
        try:
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    await self._end("the server ended the stream")
                    return
                chunk = await reader.readexactly(size + 2)
                assert chunk.endswith(b"\r\n"), f"a chunk not ended by CRLF: {chunk!r}"
                await self._events(lines.feed(chunk[:-2]))
        except (asyncio.IncompleteReadError, ConnectionError) as cut:
            await self._end(f"the connection ended mid-stream: {cut!r}")
        except asyncio.CancelledError:
            self.ended = self.ended or "closed by the client"
            raise
        except BaseException as failed:
            await self._end(f"the stream could not be read: {failed!r}")
            raise

    async def _events(self, fields: list[tuple[str, str] | None]) -> None:
        """Apply each field (None: a blank line, which dispatches the event) as an EventSource
        does; an event may span chunks."""
        frames: list[Frame] = []
        for field in fields:
            if field is None:
                if self._event_id is not None:
                    self.last_event_id = self._event_id
                if self._data:
                    text = "\n".join(self._data)
                    self.events.append(SseEvent(text, self._event_id))
                    frames.append(json.loads(text))
                self._data, self._event_id = [], None
                continue
            name, value = field
            if name == "":
                self.comments.append(value)
            elif name == "data":
                self._data.append(value)
            elif name == "id":
                self._event_id = value
            elif name == "retry" and value.isdigit():
                self.retry_ms = int(value)
        await self._record(frames)

    async def close(self) -> None:
        """Drop the stream (the session ends on the server when it sees the socket go)."""
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await close_writer(self._writer)


class SseLines:
    """The fields of an event stream's bytes, fed in any pieces: ``(name, value)`` per line
    (``("", text)`` for a comment), None for each blank line."""

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes) -> list[tuple[str, str] | None]:
        *lines, self._tail = (self._tail + data).split(b"\n")
        fields: list[tuple[str, str] | None] = []
        for raw in lines:
            line = raw.decode("utf-8").removesuffix("\r")
            if not line:
                fields.append(None)
            elif line.startswith(":"):
                fields.append(("", line[1:].removeprefix(" ")))
            else:
                name, _, value = line.partition(":")
                fields.append((name, value.removeprefix(" ")))
        return fields


async def open_sse(
    port: int,
    token: str | None,
    *,
    last_event_id: str | None = None,
    headers: dict[str, str] | None = None,
    path: str = "/sse",
    receive_buffer: int | None = None,
) -> tuple[int, dict[str, str], bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    """Send ``GET path`` (bearer ``token`` unless None) and read the answer's head: status,
    headers, the body of a refusal (by Content-Length), and the open stream.

    ``receive_buffer``: the socket's ``SO_RCVBUF``, set before it connects (so the kernel
    cannot grow it), for a reader that stalls soon."""
    all_headers = {"Host": f"127.0.0.1:{port}", "Accept": "text/event-stream"}
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    if last_event_id is not None:
        all_headers["Last-Event-ID"] = last_event_id
    all_headers.update(headers or {})
    head = f"GET {path} HTTP/1.1\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in all_headers.items()
    )
    if receive_buffer is None:
        reader, writer = await asyncio.wait_for(open_raw(port), TIMEOUT_S)
    else:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        connecting = asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        await asyncio.wait_for(connecting, TIMEOUT_S)
        reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write((head + "\r\n").encode("latin-1"))
        status, response_headers, body = await read_http_head(reader, TIMEOUT_S)
    except BaseException:
        await close_writer(writer)
        raise
    return status, response_headers, body, reader, writer


class SseSteps:
    """One ``GET /sse`` read a step at a time, only when the test asks (``next``): for the answer's
    head and refusals, a reader that stalls, and each event with the last event id after it."""

    def __init__(
        self,
        status: int,
        headers: dict[str, str],
        body: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.status, self.headers, self.body = status, headers, body
        self._reader, self._writer = reader, writer
        self._lines = SseLines()
        self._fields: list[tuple[str, str] | None] = []
        self.last_event_id: str | None = None  # as a browser keeps it (None: never set)
        self.retry_ms: int | None = None
        self.ended = False

    @classmethod
    async def open(cls, port: int, token: str | None, **options: Any) -> SseSteps:
        """``open_sse``'s answer; a refusal's connection is closed at once."""
        steps = cls(*await open_sse(port, token, **options))
        if steps.status != 200:
            await steps.close()
        return steps

    async def next(self, timeout: float = TIMEOUT_S) -> tuple[Frame, str | None]:
        """The next event's JSON and the last event id after it (AssertionError at the end)."""
        data: list[str] = []
        while True:
            while not self._fields:
                chunk = await asyncio.wait_for(self._chunk(), timeout)
                assert chunk is not None, "the event stream ended"
                self._fields = self._lines.feed(chunk)
            field = self._fields.pop(0)
            if field is None:
                if data:
                    return json.loads("\n".join(data)), self.last_event_id
            elif field[0] == "data":
                data.append(field[1])
            elif field[0] == "id":
                self.last_event_id = field[1]
            elif field[0] == "retry":
                self.retry_ms = int(field[1])

    async def until(self, kind: str, **fields: object) -> tuple[Frame, str | None]:
        """Events up to the first of type ``kind`` with ``fields``."""
        while True:
            frame, event_id = await self.next()
            if frame["type"] == kind and all(
                frame.get(k) == v for k, v in fields.items()
            ):
                return frame, event_id

    async def rest(self) -> list[tuple[Frame, str | None]]:
        """Every event until the server ends the stream."""
        events = []
        while not self.ended or self._fields:
            try:
                events.append(await self.next())
            except AssertionError:
                break
        assert self.ended, "the stream did not end"
        return events

    async def _chunk(self) -> bytes | None:
        size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            self.ended = True
            return None
        chunk = await self._reader.readexactly(size + 2)
        assert chunk.endswith(b"\r\n"), f"a chunk not ended by CRLF: {chunk!r}"
        return chunk[:-2]

    async def close(self) -> None:
        await close_writer(self._writer)


# -- long-polling ----------------------------------------------------------------------


class PollClient(SessionClient):
    """A long-polling session: polled in the background until ``close`` or a 404; see the module."""

    def __init__(
        self, port: int, token: str, user: str, first: Frame, wait_s: float
    ) -> None:
        super().__init__(port, token, user)
        self.session = first["session"]
        self.wait_s = wait_s
        #: Every answer, without its events (``session``, ``cursor``, ``position``).
        self.answers: list[Frame] = []
        self.cursor = 0
        #: The last answer's position: what a new session resumes with.
        self.position = ""
        self._answered(first)
        self.frames.extend(first["events"])
        self._polling = asyncio.get_running_loop().create_task(self._poll())

    @classmethod
    async def open(
        cls,
        port: int,
        token: str,
        user: str,
        *,
        last_event_id: str | None = None,
        in_header: bool = False,
        wait_s: float = POLL_WAIT_S,
    ) -> PollClient:
        """A new session (its first answer read), resumed at ``last_event_id``: in the query's
        ``last_event_id`` or, with ``in_header``, the ``Last-Event-ID`` header."""
        path, headers = "/poll", {"Authorization": f"Bearer {token}"}
        if last_event_id is not None and in_header:
            headers["Last-Event-ID"] = last_event_id
        elif last_event_id is not None:
            path += f"?last_event_id={quote(last_event_id, safe='')}"
        reply = await http(port, "GET", path, headers=headers)
        assert reply.status == 200, f"GET /poll: {reply.status} {reply.body!r}"
        first = reply.json
        assert first["events"] and first["events"][0]["type"] == "session", first
        return cls(port, token, user, first, wait_s)

    def _answered(self, answer: Frame) -> None:
        assert answer["session"] == self.session, answer
        assert answer["cursor"] >= self.cursor, (answer, self.cursor)
        self.answers.append({k: v for k, v in answer.items() if k != "events"})
        self.cursor = answer["cursor"]
        self.position = answer["position"]

    async def _poll(self) -> None:
        try:
            while True:
                reply = await http(
                    self.port,
                    "GET",
                    f"/poll?session={self.session}&ack={self.cursor}&wait={self.wait_s:g}",
                    headers=self.auth,
                    timeout=self.wait_s + TIMEOUT_S,
                )
                if reply.status == 404:
                    await self._end(f"404 {reply.body!r}")
                    return
                assert reply.status == 200, f"GET /poll: {reply.status} {reply.body!r}"
                answer = reply.json
                self._answered(answer)
                await self._record(answer["events"])
        except asyncio.CancelledError:
            self.ended = self.ended or "polling stopped by the client"
            raise
        except BaseException as failed:
            await self._end(f"polling failed: {failed!r}")
            raise

    async def close(self) -> None:
        """Stop polling, as a client that went away: the session is left to idle out."""
        self._polling.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._polling
