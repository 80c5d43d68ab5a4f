"""A raw client of ``GET /sse``: the response head, then events as the HTML standard parses them.

The body is read from a real socket, chunked framing undone by hand (what the
server writes is exactly what is checked), lines split on LF, ``data:`` and
``id:`` fields gathered until a blank line dispatches the event. ``id`` is the
last event id as a browser would keep it: an event without an ``id:`` field
leaves it as it was.
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass, field

from tests.support.helpers import TIMEOUT_S, close_writer, open_raw


@dataclass
class SseEvent:
    data: dict
    id: str | None  # the last event id after this event (None: never set)


@dataclass
class SseStream:
    """One open ``GET /sse``; ``status`` and ``headers`` of its answer, then ``next()`` events."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    status: int
    headers: dict[str, str]
    body: bytes = b""  # a refusal's whole body
    last_id: str | None = None
    comments: int = 0
    retry: int | None = None
    ended: bool = False
    _text: bytearray = field(default_factory=bytearray)

    async def next(self, timeout: float = TIMEOUT_S) -> SseEvent:
        """The next event (``AssertionError`` when the stream ends or nothing comes in time)."""
        data: list[str] = []
        while True:
            line = await asyncio.wait_for(self._line(), timeout)
            assert line is not None, "the event stream ended"
            if line == "":
                if data:
                    return SseEvent(json.loads("\n".join(data)), self.last_id)
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "":
                self.comments += 1
            elif name == "data":
                data.append(value)
            elif name == "id":
                self.last_id = value
            elif name == "retry":
                self.retry = int(value)

    async def until(
        self, kind: str, timeout: float = TIMEOUT_S, **fields: object
    ) -> SseEvent:
        """Events up to the first of type ``kind`` whose fields match."""
        while True:
            event = await self.next(timeout)
            if event.data.get("type") == kind and all(
                event.data.get(k) == v for k, v in fields.items()
            ):
                return event

    async def end(self, timeout: float = TIMEOUT_S) -> list[SseEvent]:
        """Every event left until the server ends the stream."""
        events = []
        while True:
            try:
                events.append(await self.next(timeout))
            except AssertionError:
                assert self.ended
                return events

    async def close(self) -> None:
        await close_writer(self.writer, TIMEOUT_S)

    async def _line(self) -> str | None:
        while b"\n" not in self._text:
            if self.ended:
                return None
            chunk = await self._chunk()
            if chunk is None:
                self.ended = True
                if not self._text:
                    return None
                self._text += b"\n"
            else:
                self._text += chunk
        line, _, rest = bytes(self._text).partition(b"\n")
        self._text = bytearray(rest)
        return line.decode("utf-8")

    async def _chunk(self) -> bytes | None:
        size_line = await self.reader.readline()
        if not size_line:
            return None
        size = int(size_line.strip(), 16)
        if size == 0:
            await self.reader.readline()
            return None
        data = await self.reader.readexactly(size + 2)
        assert data.endswith(b"\r\n")
        return data[:-2]


async def open_sse(
    port: int,
    headers: dict[str, str] | None = None,
    query: str = "",
    timeout: float = TIMEOUT_S,
    receive_buffer: int | None = None,
) -> SseStream:
    """``GET /sse`` with ``headers``; a refusal's body is read whole into ``body``.

    ``receive_buffer``: the client socket's ``SO_RCVBUF``, set before it connects (so the
    kernel cannot grow it), for a reader that stalls soon."""
    lines = {
        "Host": f"127.0.0.1:{port}",
        "Accept": "text/event-stream",
        **(headers or {}),
    }
    head = f"GET /sse{query} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in lines.items()
    )
    if receive_buffer is None:
        reader, writer = await asyncio.wait_for(open_raw(port), timeout)
    else:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.wait_for(
            asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)), timeout
        )
        reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(head.encode("latin-1") + b"\r\n")
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    status_line, *header_lines = raw.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    got = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            got[name.strip().lower()] = value.strip()
    stream = SseStream(reader, writer, status, got)
    if status != 200:
        length = int(got.get("content-length", "0"))
        stream.body = await asyncio.wait_for(reader.readexactly(length), timeout)
        await stream.close()
    return stream
