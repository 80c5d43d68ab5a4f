"""``HttpConnection``: one accepted TCP connection while it speaks HTTP/1.1, as one object.

The h11 state machine, the stream reader and writer and the peer's address
live together here (as in hypercorn's ``H11Protocol``), so reading a request,
answering it and handing the socket to a WebSocket are methods of the
connection, not functions that are passed all four. Per request: read it
whole (a bounded head and body, a deadline for all of it), then answer a route
and keep the connection alive, or run the upgrade (``rawws.server.upgrade``).
Malformed HTTP gets its 4xx and a close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import TYPE_CHECKING, cast

import h11

from rawws.core.http import Request, Response, check_request_head, error_response
from rawws.errors import HttpError
from rawws.server.streamed import ResponseStream, StreamedResponse
from rawws.server.upgrade import upgrade

if TYPE_CHECKING:
    from rawws.server.server import Server

log = logging.getLogger("rawws.server")

#: What the HTTP side reads at once (a WebSocket then reads what its transport gives).
READ_SIZE = 64 * 1024
SERVER_HEADER = ("Server", "rawws")


class _RequestTimeout(Exception):
    def __init__(self, partial: bool) -> None:
        self.partial = partial


class HttpConnection:
    """The HTTP/1.1 side of one TCP connection: h11, the stream pair, the peer, the server it serves."""

    __slots__ = ("server", "config", "h11", "reader", "writer", "peer", "scheme")

    def __init__(
        self, server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.config = server.config
        self.h11 = h11.Connection(
            h11.SERVER, max_incomplete_event_size=self.config.max_header_bytes
        )
        self.reader = reader
        self.writer = writer
        self.peer = format_peer(writer.get_extra_info("peername"))
        self.scheme = "https" if server.tls else "http"

    async def serve(self) -> bool:
        """Answer requests until the connection ends; ``True`` when it became a WebSocket (which owns it now)."""
        server = self.server
        first = True
        while not server.shutting_down:
            try:
                request = await self.read_request(first)
            except _RequestTimeout as timeout:
                if timeout.partial:
                    self.refuse(HttpError(408, "request timed out"))
                return False
            except h11.RemoteProtocolError as exc:
                self.refuse(HttpError(exc.error_status_hint, "malformed HTTP request"))
                return False
            except HttpError as error:
                self.refuse(error)
                return False
            if request is None:
                return False
            first = False
            server.counters.http_requests += 1
            request = server.forwarded(request)
            endpoint = server.endpoint_for(request.path)
            if endpoint is not None:
                if await upgrade(self, request, endpoint):
                    return True
            else:
                response = await server.respond(request)
                log.debug(
                    "http %s %s -> %d peer=%s",
                    request.method,
                    request.path,
                    response.status,
                    request.peer,
                )
                if isinstance(response, StreamedResponse):
                    await self.stream(response, request)
                    return False
                self.respond(response, request)
            if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
                self.h11.start_next_cycle()
            else:
                return False
        return False

    async def read_request(self, first: bool) -> Request | None:
        """The next whole request (head and bounded body), or ``None`` when the client went away."""
        conn, reader, config = self.h11, self.reader, self.config
        loop = asyncio.get_running_loop()
        # The first request must arrive whole within the handshake timeout; a
        # keep-alive connection may idle longer, but once a request starts it
        # gets the handshake timeout too, so trickling bytes cannot hold it.
        wait = config.handshake_timeout_s if first else config.keepalive_idle_s
        deadline = loop.time() + wait
        received_any = False
        head: h11.Request | None = None
        body: list[bytes] = []
        body_bytes = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                idle = not first and not received_any
                if idle:
                    self.server.idle_readers.add(reader)
                try:
                    async with asyncio.timeout_at(deadline):
                        data = await reader.read(READ_SIZE)
                except TimeoutError:
                    raise _RequestTimeout(partial=received_any) from None
                finally:
                    if idle:
                        self.server.idle_readers.discard(reader)
                if not received_any:
                    # RFC 7230 §3.5: ignore blank lines before a request
                    data = data.lstrip(b"\r\n")
                    if data:
                        received_any = True
                        if not first:
                            deadline = loop.time() + config.handshake_timeout_s
                    elif not reader.at_eof():
                        continue
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                head = event
                check_request_head(
                    event.method,
                    event.target,
                    event.http_version,
                    list(event.headers),
                    max_target_bytes=config.max_target_bytes,
                    max_head_bytes=config.max_header_bytes,
                    max_body_bytes=config.max_body_bytes,
                )
            elif isinstance(event, h11.Data):
                body_bytes += len(event.data)
                if body_bytes > config.max_body_bytes:
                    raise HttpError(413, "request body too large")
                body.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                return Request.from_target(
                    head.method.decode("ascii"),
                    head.target.decode("latin-1"),
                    headers=list(head.headers),
                    http_version=head.http_version,
                    body=b"".join(body),
                    peer=self.peer,
                    scheme=self.scheme,
                )
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None

    def respond(
        self, response: Response, request: Request | None = None, *, close: bool = False
    ) -> None:
        """Write ``response`` (no body to a HEAD); ``Connection: close`` when asked or shutting down."""
        headers = [
            SERVER_HEADER,
            *response.headers,
            ("Content-Length", str(len(response.body))),
        ]
        if close or self.server.shutting_down:
            headers.append(("Connection", "close"))
        conn = self.h11
        data = conn.send(
            h11.Response(
                status_code=response.status, headers=headers, reason=response.reason
            )
        )
        if response.body and not (request is not None and request.method == "HEAD"):
            data += conn.send(h11.Data(data=response.body))
        data += conn.send(h11.EndOfMessage())
        self.writer.write(data)

    async def stream(self, response: StreamedResponse, request: Request) -> None:
        """Write ``response``'s head, let it produce its body, then close the connection."""
        chunked = request.http_version == b"1.1"
        headers = [SERVER_HEADER, *response.headers, ("Connection", "close")]
        if (
            chunked
        ):  # the chunks are framed by ``ResponseStream``; h11 only writes the head
            headers.append(("Transfer-Encoding", "chunked"))
        self.writer.write(
            self.h11.send(
                h11.Response(
                    status_code=response.status, headers=headers, reason=response.reason
                )
            )
            or b""
        )
        # As a WebSocket's after its 101: the kernel holds a bounded part of a slow reader's backlog.
        _set_send_buffer(self.writer, self.config.send_buffer_bytes)
        body = ResponseStream(
            cast(asyncio.Transport, self.writer.transport),
            chunked=chunked,
            high_water=self.config.write_high_water_bytes,
            unread=bool(_take_buffered(self.reader)) or self.reader.at_eof(),
        )
        try:
            await response.produce(body)
        finally:
            await body.finish()

    def refuse(self, error: HttpError) -> None:
        """Answer a request we cannot go on with; the caller then closes the connection."""
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        log.debug("http error %d: %s", error.status, error.message)
        try:
            self.respond(error_response(error), close=True)
        except h11.LocalProtocolError:
            pass

    def switch_protocols(self, headers: list[tuple[str, str]]) -> tuple[bytes, bytes]:
        """The 101's bytes (not written yet: they leave with the first frames) and every byte read past
        the request (a client may send frames right behind it), for the WebSocket to take over."""
        conn = self.h11
        assert conn.their_state is h11.MIGHT_SWITCH_PROTOCOL  # type: ignore[attr-defined]  # h11 exports it, without __all__
        response = conn.send(
            h11.InformationalResponse(
                status_code=101, headers=headers, reason=b"Switching Protocols"
            )
        )
        _set_send_buffer(self.writer, self.config.send_buffer_bytes)
        trailing_data, _ = conn.trailing_data
        return response or b"", bytes(trailing_data) + _take_buffered(self.reader)


def _set_send_buffer(writer: asyncio.StreamWriter, size: int) -> None:
    """``SO_SNDBUF`` of a WebSocket's socket, so the outbox (not the kernel's autotuned few MiB)
    is what a slow reader fills first; 0 leaves the kernel's default."""
    sock = writer.get_extra_info("socket")
    if size > 0 and sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


def _take_buffered(reader: asyncio.StreamReader) -> bytes:
    """What the stream reader holds beyond the upgrade request.

    StreamReader has no public non-blocking read, hence ``_buffer`` (a bytearray since Python 3.4).
    """
    buffered: bytearray = reader._buffer  # type: ignore[attr-defined]  # private, no public equivalent
    data = bytes(buffered)
    buffered.clear()
    return data


def format_peer(peername: object) -> str:
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peername)
