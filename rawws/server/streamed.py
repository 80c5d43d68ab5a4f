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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rawws.core.http import Response


async def _no_body(stream: ResponseStream) -> None:
    return None


@dataclass(frozen=True, slots=True)
class StreamedResponse(Response):
    """A response whose body ``produce`` writes to the ``ResponseStream`` it is given."""

    produce: Callable[[ResponseStream], Awaitable[None]] = _no_body


class ResponseStream(asyncio.Protocol):
    """The open body of one ``StreamedResponse``: ``write`` pieces; ``ended`` once it should stop.

    It becomes its transport's protocol once the head is written: no reader, no task of its
    own is kept per open stream (a client that sends anything, or goes, ends it), and the
    transport's flow control (``pause_writing``) is what ``drain`` waits on.
    """

    __slots__ = (
        "_transport",
        "_chunked",
        "ended",
        "why",
        "on_end",
        "_paused",
        "_drained",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        *,
        chunked: bool,
        high_water: int,
        unread: bool = False,
    ) -> None:
        self._transport = transport
        self._chunked = chunked
        self.ended = (
            False  # the client went away or sent bytes, or the server is stopping
        )
        #: Called once when it ends (a producer waiting on something else wakes up).
        self.on_end: Callable[[], None] | None = None
        self._paused = False
        self._drained: asyncio.Future[None] | None = None
        transport.set_protocol(self)
        transport.resume_reading()  # (the stream reader may have paused it)
        # ``drain`` waits once more than ``high_water`` bytes wait for the socket, and until
        # half of them went: the producer's bound and the transport's are one.
        transport.set_write_buffer_limits(high=high_water, low=high_water // 2)
        if unread:  # bytes already came behind the request
            self.end("client sent data")
        elif transport.is_closing():
            self.end("client gone")

    def write(self, *pieces: bytes) -> None:
        """Send ``pieces`` as one piece of the body (one chunk)."""
        if self.ended:
            return
        # One ``write`` of the joined bytes, not ``writelines``: ``write`` pauses the protocol past
        # the high-water mark on every Python (3.12.1's ``writelines`` did not, and lost order).
        if self._chunked:
            size = sum(map(len, pieces))
            self._transport.write(b"".join((b"%x\r\n" % size, *pieces, b"\r\n")))
        else:
            self._transport.write(b"".join(pieces))

    @property
    def buffered(self) -> int:
        """Bytes written that the socket has not taken yet."""
        return self._transport.get_write_buffer_size()

    async def drain(self) -> None:
        """Return once no more than half the high-water mark waits (at once when not over it)."""
        if not self._paused or self.ended:
            return
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()
        await self._drained

    def end(self, why: str) -> None:
        """Stop the body (the producer sees ``ended``); ``why`` is for the reader of the code."""
        if self.ended:
            return
        self.ended = True
        self._release()
        if self.on_end is not None:
            self.on_end()

    async def finish(self) -> None:
        """The body's last bytes (the last chunk) and the connection's close."""
        self.end("finished")
        transport = self._transport
        if not transport.is_closing():
            if self._chunked:
                transport.write(b"0\r\n\r\n")
            transport.close()

    # -- asyncio.Protocol ------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.end("client sent data")

    def eof_received(self) -> bool:
        self.end("client gone")
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.end("client gone")

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._release()

    def _release(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)
