"""An answer whose body is sent while it is made: ``StreamedResponse`` and its ``ResponseStream``.

Server-Sent Events need a response that stays open and gets a piece at a time.
A route answers with a ``StreamedResponse``; the HTTP connection writes its head
(h11 builds it), then hands a ``ResponseStream`` to the response's ``produce``
and closes the connection when it returns. The body is chunked for an HTTP/1.1
client (the chunk framing is written here, not by h11, so a piece made once for
many receivers is written as it is, behind a few bytes of its own) and
delimited by the close for HTTP/1.0.

The stream reads the socket on its own: a client that goes away (or sends
anything: nothing is expected on an open event stream) ends it, and so does
the server's shutdown (``Server.on_closing``). ``buffered`` is what the socket
has not taken yet, for the producer's slow-reader bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rawws.core.http import Response

#: What is read at once from a client that should send nothing.
_READ_SIZE = 4096


async def _no_body(stream: ResponseStream) -> None:
    return None


@dataclass(frozen=True, slots=True)
class StreamedResponse(Response):
    """A response whose body ``produce`` writes to the ``ResponseStream`` it is given."""

    produce: Callable[[ResponseStream], Awaitable[None]] = _no_body


class ResponseStream:
    """The open body of one ``StreamedResponse``: ``write`` pieces, ``ended`` once it should stop."""

    __slots__ = ("_writer", "_chunked", "ended", "why", "on_end", "_reading")

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        chunked: bool,
        high_water: int,
    ) -> None:
        # ``drain`` waits once more than ``high_water`` bytes wait for the socket, and until
        # half of them went: the producer's bound and the transport's are one.
        writer.transport.set_write_buffer_limits(high=high_water, low=high_water // 2)
        self._writer = writer
        self._chunked = chunked
        #: Set when the client went away, sent bytes, or the server is stopping.
        self.ended = asyncio.Event()
        self.why = ""
        #: Called once when it ends (a producer waiting on something else wakes up).
        self.on_end: Callable[[], None] | None = None
        self._reading = asyncio.get_running_loop().create_task(self._read(reader))

    def write(self, *pieces: bytes) -> None:
        """Send ``pieces`` as one piece of the body (one chunk)."""
        if self.ended.is_set():
            return
        transport = self._writer.transport
        if self._chunked:
            size = sum(map(len, pieces))
            transport.writelines((b"%x\r\n" % size, *pieces, b"\r\n"))
        else:
            transport.writelines(pieces)

    @property
    def buffered(self) -> int:
        """Bytes written that the socket has not taken yet."""
        return self._writer.transport.get_write_buffer_size()

    async def drain(self) -> None:
        """Return once no more than half the high-water mark waits (at once when not over it)."""
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    def end(self, why: str) -> None:
        """Stop the body (the producer sees ``ended``); the first reason given is kept."""
        if not self.ended.is_set():
            self.why = why
            self.ended.set()
            if self.on_end is not None:
                self.on_end()

    async def finish(self) -> None:
        """The body's last bytes (the last chunk) and the connection's close."""
        self.end("finished")
        self._reading.cancel()
        writer = self._writer
        if not writer.transport.is_closing():
            if self._chunked:
                writer.transport.write(b"0\r\n\r\n")
            writer.close()
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await self._reading

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            data = await reader.read(_READ_SIZE)
        except ConnectionError:
            data = b""
        self.end("client sent data" if data else "client gone")
