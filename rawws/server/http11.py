"""``HttpConnection``: one accepted TCP connection while it speaks HTTP/1.1, as one object.

The h11 state machine, the transport and the peer's address live together here
(as in hypercorn's ``H11Protocol``), so reading a request, answering it and
handing the socket to a WebSocket are methods of the connection, not functions
that are passed all three. It is the transport's protocol: the first request is
parsed as it arrives and an upgrade that waits for nothing is done at once;
whatever waits (a route, keep-alive) goes on in a task. Per request: read it
whole (a bounded head and body, a deadline for all of it), then answer a route
and keep the connection alive, or run the upgrade (``rawws.server.upgrade``).
Malformed HTTP gets its 4xx and a close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import TYPE_CHECKING, Any, cast

import h11

from rawws.core.headers import shared_headers
from rawws.core.http import Request, Response, check_request_head, error_response
from rawws.errors import HttpError
from rawws.server.endpoint import WebSocketEndpoint
from rawws.server.streamed import ResponseStream, StreamedResponse
from rawws.server.sweep import Sweeper, sweep_period, sweeper_for
from rawws.server.upgrade import upgrade, upgrade_now

if TYPE_CHECKING:
    from rawws.server.server import Server

log = logging.getLogger("rawws.server")

#: What the HTTP side reads at once (a WebSocket then reads what its transport gives).
READ_SIZE = 64 * 1024
SERVER_HEADER = ("Server", "rawws")


class _RequestTimeout(Exception):
    def __init__(self, partial: bool) -> None:
        self.partial = partial


#: ``_next_request``'s word for "h11 needs more bytes first".
_MORE = object()


class HttpConnection(asyncio.Protocol):
    """The HTTP/1.1 side of one TCP connection: its transport's protocol until it becomes a WebSocket.

    The first request is parsed as its bytes arrive (``data_received``) and, when its
    answer needs no waiting (an upgrade whose checks are all synchronous, the usual
    case), answered there too: a handshake costs no task, no stream pair and no read
    timeout of its own (the handshake deadline is one entry in the loop's sweep). What must wait
    (a route's handler, ``process_request``, an asynchronous authenticator or limit
    count, the keep-alive requests after the first) runs in one task that reads from
    a ``StreamReader`` this protocol feeds from then on.
    """

    __slots__ = (
        "server",
        "config",
        "h11",
        "transport",
        "reader",
        "peer",
        "scheme",
        "_head",
        "_headers",
        "_body",
        "_body_bytes",
        "_received_any",
        "_eof",
        "_deadline",
        "_sweeper",
    )

    def __init__(self, server: Server) -> None:
        self.server = server
        self.config = server.config
        self.h11 = h11.Connection(
            h11.SERVER, max_incomplete_event_size=self.config.max_header_bytes
        )
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set by connection_made, first
        #: Where the task reads once there is one (``None`` while the first request arrives).
        self.reader: asyncio.StreamReader | None = None
        self.peer = ""
        self.scheme = "https" if server.tls else "http"
        self._head: h11.Request | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._received_any = False
        self._eof = False
        #: When the first request must be whole (loop time), until it is; checked by the loop's sweep.
        self._deadline: float | None = None
        self._sweeper: Sweeper | None = None

    # -- the first request, parsed and answered as it arrives ----------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.peer = format_peer(transport.get_extra_info("peername"))
        # The first request must arrive whole within the handshake timeout: one sweep per loop
        # checks every connection's deadline (``rawws.server.sweep``), no timer is armed per connection.
        loop = asyncio.get_running_loop()
        timeout = self.config.handshake_timeout_s
        self._deadline = loop.time() + timeout
        self._sweeper = sweeper_for(loop, sweep_period(timeout))
        self._sweeper.add(self)
        self.server.arriving(self)

    def data_received(self, data: bytes) -> None:
        if self.reader is not None:
            self.reader.feed_data(data)
            return
        if self._deadline is None:
            return  # refused or timed out, and closing: nothing more is read
        if not self._received_any:
            # RFC 7230 §3.5: blank lines before a request are ignored
            data = data.lstrip(b"\r\n")
            if not data:
                return
            self._received_any = True
        self.h11.receive_data(data)
        self._first_request()

    def eof_received(self) -> bool:
        if self.reader is not None:
            self.reader.feed_eof()
        elif self._deadline is not None:
            self._eof = True
            self.h11.receive_data(b"")
            self._first_request()
        # As asyncio's stream protocol: a plain socket stays half-open for the answer; TLS cannot.
        return not self.server.tls

    def connection_lost(self, exc: Exception | None) -> None:
        if self.reader is None:
            self._arrived()
        elif exc is None:
            self.reader.feed_eof()
        else:
            self.reader.set_exception(exc)

    def _arrived(self) -> None:
        """The first request is whole, or the connection is over: its deadline is no longer needed."""
        if self._deadline is not None:
            self._deadline = None
            assert self._sweeper is not None
            self._sweeper.discard(self)
            self.server.arrived(self)

    @property
    def next_deadline(self) -> float | None:
        """For the sweep: when the first request must be whole (``None`` once it is)."""
        return self._deadline

    def sweep(self, now: float) -> None:
        """The handshake deadline passed before the first request was whole: 408 if it had begun, then close."""
        self._arrived()
        if self._received_any:
            self.refuse(HttpError(408, "request timed out"))
        self.transport.close()

    def _first_request(self) -> None:
        """Answer the first request once h11 has it whole; a malformed one gets its 4xx and a close."""
        if self._deadline is None:
            return  # answered already, or timed out
        try:
            request = self._next_request()
        except h11.RemoteProtocolError as exc:
            self._give_up(HttpError(exc.error_status_hint, "malformed HTTP request"))
            return
        except HttpError as error:
            self._give_up(error)
            return
        if request is _MORE:
            return
        self._arrived()
        if request is None:
            self.transport.close()
            return
        assert isinstance(request, Request)
        try:
            self._answer_first(request)
        except Exception:
            log.exception("connection failed peer=%s", self.peer)
            self.transport.close()

    def _give_up(self, error: HttpError) -> None:
        self._arrived()
        self.refuse(error)
        self.transport.close()

    def _answer_first(self, request: Request) -> None:
        """An upgrade whose checks need no waiting is done here and now; the rest goes on in a task."""
        server = self.server
        server.counters.http_requests += 1
        request = server.forwarded(request)
        endpoint = server.endpoint_for(request.path)
        if endpoint is None:
            self._go_on(self._then_serve(self.answer(request, None)))
            return
        outcome = upgrade_now(self, request, endpoint)
        if outcome is True:
            return
        self._go_on(self.serve() if outcome is False else self._then_serve(outcome))

    async def _then_serve(self, answering: Awaitable[bool]) -> bool:
        return await answering or await self.serve()

    def _go_on(self, serving: Coroutine[Any, Any, bool]) -> None:
        """What the first request's answer still waits for, then the next requests: in one task."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=READ_SIZE, loop=loop)
        reader.set_transport(self.transport)
        if self._eof:
            reader.feed_eof()
        self.reader = reader
        self.server.track_http(loop.create_task(self._run(serving)))

    async def _run(self, serving: Coroutine[Any, Any, bool]) -> None:
        handed_off = False
        try:
            handed_off = await serving
        except asyncio.CancelledError:
            self.transport.abort()
        except (ConnectionError, OSError) as exc:
            # The stream reader keeps the error, and its traceback keeps the frames that
            # hold the reader: a cycle only the collector's full pass would free.
            exc.__traceback__ = None
            log.debug("connection lost peer=%s: %r", self.peer, exc)
        except Exception:
            log.exception("connection failed peer=%s", self.peer)
        finally:
            if not handed_off and not self.transport.is_closing():
                self.transport.close()

    # -- what waits, and the requests after the first: in the task -------------------------

    async def answer(
        self, request: Request, endpoint: WebSocketEndpoint | None
    ) -> bool:
        """Answer one request; ``True`` when it made the connection a WebSocket (which owns it now)."""
        if endpoint is not None:
            return await upgrade(self, request, endpoint)
        response = await self.server.respond(request)
        log.debug(
            "http %s %s -> %d peer=%s",
            request.method,
            request.path,
            response.status,
            request.peer,
        )
        if isinstance(response, StreamedResponse):
            await self.stream(response, request)  # the connection ends with it
        else:
            self.respond(response, request)
        return False

    async def serve(self) -> bool:
        """Answer keep-alive requests until the connection ends; ``True`` when it became a WebSocket."""
        server = self.server
        conn = self.h11
        while not server.shutting_down:
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return False
            conn.start_next_cycle()
            try:
                request = await self.read_request()
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
            server.counters.http_requests += 1
            request = server.forwarded(request)
            if await self.answer(request, server.endpoint_for(request.path)):
                return True
        return False

    async def read_request(self) -> Request | None:
        """The next keep-alive request, whole (head and bounded body), or ``None`` when the client went away."""
        reader, config = self.reader, self.config
        assert reader is not None
        loop = asyncio.get_running_loop()
        # A keep-alive connection may idle longer, but once a request starts it
        # gets the handshake timeout, so trickling bytes cannot hold it.
        deadline = loop.time() + config.keepalive_idle_s
        received_any = False
        while True:
            request = self._next_request()
            if request is not _MORE:
                return cast(Request | None, request)
            idle = not received_any
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
                    deadline = loop.time() + config.handshake_timeout_s
                elif not reader.at_eof():
                    continue
            self.h11.receive_data(data)

    def _next_request(self) -> Request | None | object:
        """The request h11 has whole (head and bounded body), ``None`` when the client went away, or
        ``_MORE`` when it needs more bytes first; what came of a request so far is kept between calls."""
        conn, config = self.h11, self.config
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return _MORE
            if isinstance(event, h11.Request):
                self._head = event
                # Copied once from h11's header sequence (item by item), the common names and
                # values shared: checked, then kept by the request for the connection's life.
                self._headers = shared_headers(event.headers)
                check_request_head(
                    event.method,
                    event.target,
                    event.http_version,
                    self._headers,
                    max_target_bytes=config.max_target_bytes,
                    max_head_bytes=config.max_header_bytes,
                    max_body_bytes=config.max_body_bytes,
                )
            elif isinstance(event, h11.Data):
                self._body_bytes += len(event.data)
                if self._body_bytes > config.max_body_bytes:
                    raise HttpError(413, "request body too large")
                self._body.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                head = self._head
                assert head is not None
                body = b"".join(self._body) if self._body else b""
                self._head, self._body, self._body_bytes = None, [], 0
                return Request.from_target(
                    head.method.decode("ascii"),
                    head.target.decode("latin-1"),
                    headers=self._headers,
                    http_version=head.http_version,
                    body=body,
                    peer=self.peer,
                    scheme=self.scheme,
                )
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None

    @property
    def at_eof(self) -> bool:
        """The client closed its side, and every byte it sent was read."""
        return self._eof if self.reader is None else self.reader.at_eof()

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
        self.transport.write(data)

    async def stream(self, response: StreamedResponse, request: Request) -> None:
        """Write ``response``'s head, let it produce its body, then close the connection."""
        chunked = request.http_version == b"1.1"
        headers = [SERVER_HEADER, *response.headers, ("Connection", "close")]
        if (
            chunked
        ):  # the chunks are framed by ``ResponseStream``; h11 only writes the head
            headers.append(("Transfer-Encoding", "chunked"))
        self.transport.write(
            self.h11.send(
                h11.Response(
                    status_code=response.status, headers=headers, reason=response.reason
                )
            )
            or b""
        )
        body = ResponseStream(
            self.transport,
            chunked=chunked,
            high_water=self.config.write_high_water_bytes,
            unread=bool(self._take_buffered()) or self.at_eof,
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
        trailing_data, _ = conn.trailing_data
        return response or b"", bytes(trailing_data) + self._take_buffered()

    def _take_buffered(self) -> bytes:
        """What the stream reader (if a task read) holds beyond the request.

        StreamReader has no public non-blocking read, hence ``_buffer`` (a bytearray since Python 3.4).
        """
        if self.reader is None:
            return b""
        buffered: bytearray = self.reader._buffer  # type: ignore[attr-defined]  # private, no public equivalent
        data = bytes(buffered)
        buffered.clear()
        return data


def format_peer(peername: object) -> str:
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peername)
