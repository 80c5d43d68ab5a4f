"""The asyncio edge of `rawws serve`: accept TCP, speak HTTP/1.1 through h11, hand upgrades to a session.

Per connection: read a request (bounded header size, a deadline for the whole
request), answer plain HTTP through the router with keep-alive, or run the
handshake decision and, on success, write the 101 and hand every byte h11 has
not consumed to the WebSocket session. Malformed HTTP gets its 4xx and a close.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, cast

import h11

from rawws.config import ServerConfig
from rawws.core.closecodes import GOING_AWAY
from rawws.core.counters import Counters
from rawws.core.extensions import PerMessageDeflate
from rawws.core.forwarded import TrustedProxies, forwarded_request
from rawws.core.handshake import AcceptedUpgrade, UpgradePolicy, decide_upgrade
from rawws.core.headers import is_token
from rawws.core.http import (
    Request,
    Response,
    Router,
    check_request_head,
    error_response,
    json_response,
)
from rawws.core.protocol import WebSocket
from rawws.errors import HttpError
from rawws.server.connection import ServerConnection, WebSocketHandler
from rawws.server.limits import ConnectionLimits
from rawws.server.listening import bind_failure, server_ssl_context
from rawws.server.readiness import STOP_SIGNALS, Readiness, drain, stop_signals

log = logging.getLogger("rawws.server")

READ_SIZE = (
    64 * 1024
)  # what the HTTP side reads at once (a WebSocket then reads what its transport gives)

SERVER_HEADER = ("Server", "rawws")


class Identity(Protocol):
    """Who a credential speaks for, as the server needs it: the per-user connection limit and the log
    lines take ``user``; the connection is closed with 1008 at ``expires_at`` (epoch seconds). The app's
    authenticator returns its own richer object (the chat's is ``rawws.accounts.tokens.Identity``)."""

    @property
    def user(self) -> str: ...

    @property
    def expires_at(self) -> float | None: ...


Authenticator = Callable[[Request], Identity | Awaitable[Identity]]


@dataclass(frozen=True, slots=True)
class WebSocketEndpoint:
    """A path that upgrades: how to judge the handshake, who may connect, who handles the connection."""

    policy: UpgradePolicy
    handler: WebSocketHandler
    authenticate: Authenticator | None = None


class _RequestTimeout(Exception):
    def __init__(self, partial: bool) -> None:
        self.partial = partial


class Server:
    """`rawws serve`: one listening socket, plain HTTP routes and WebSocket endpoints on it."""

    def __init__(self, config: ServerConfig, router: Router | None = None) -> None:
        self.config = config
        self.router = router or Router()
        self.endpoints: dict[str, WebSocketEndpoint] = {}
        self.counters = Counters()
        self.sessions: set[ServerConnection] = set()
        self.limits = ConnectionLimits(
            config.websockets_per_user, config.websockets_per_address
        )
        self._releases: dict[ServerConnection, Callable[[], None]] = {}
        self._connections: set[asyncio.Task[None]] = set()
        #: Readers of keep-alive connections waiting for their next request (shutdown ends those at once).
        self._idle_readers: set[asyncio.StreamReader] = set()
        self._server: asyncio.Server | None = None
        self._closing = False
        #: Run after every connection is gone (closing stores, executors, …).
        self.on_shutdown: list[Callable[[], Awaitable[None]]] = []
        self._trusted_proxies = TrustedProxies(config.forwarded_allow_ips)
        #: Where ``/metrics`` answers once started (``--metrics-port``), else ``None``.
        self.metrics_port: int | None = None
        self.router.add("GET", "/healthz", self._healthz)
        #: ``/readyz``: the checks the app registers (store, bus) and the draining flag.
        self.readiness = Readiness(config.readiness_timeout_s)
        self.router.add("GET", "/readyz", self.readiness.handle)

    def add_websocket(
        self,
        path: str,
        handler: WebSocketHandler,
        *,
        subprotocols: tuple[str, ...] = (),
        authenticate: Authenticator | None = None,
    ) -> None:
        """Serve WebSockets at ``path``; ``authenticate`` refuses (401/403) before any 101."""
        for name in subprotocols:
            # RFC 6455 §4.1: a subprotocol is a token. Checked once here, so the 101
            # (which may echo one of these names) needs no validation per handshake.
            if not is_token(name):
                raise ValueError(f"subprotocol {name!r} is not an HTTP token")
        policy = UpgradePolicy(
            max_message_bytes=self.config.max_message_bytes,
            compression=self.config.compression,
            subprotocols=subprotocols,
            window_bits=self.config.compression_window_bits,
            memory_level=self.config.compression_memory_level,
        )
        self.endpoints[path] = WebSocketEndpoint(policy, handler, authenticate)

    # -- lifecycle -------------------------------------------------------------

    async def listen(self) -> None:
        """Bind, not listening yet (a client is refused until ``start``, as before it): the first step of a start,
        so a host or port that cannot be had (or TLS files that are wrong) is a ``SettingError`` naming it
        before anything else is made."""
        if self._server is not None:
            return
        cert, key = self.config.tls_cert, self.config.tls_key
        context = (
            server_ssl_context(cert, key)
            if cert is not None and key is not None
            else None
        )
        try:
            self._server = await asyncio.start_server(
                self._accept,
                self.config.host,
                self.config.port,
                reuse_port=self.config.reuse_port or None,
                ssl=context,
                ssl_handshake_timeout=self.config.handshake_timeout_s
                if self.config.tls
                else None,
                limit=READ_SIZE,
                start_serving=False,
            )
        except OSError as exc:
            raise bind_failure(exc, self.config.host, self.config.port) or exc from None

    async def start(self) -> None:
        """Bind (if ``listen`` was not called), listen and accept connections."""
        await self.listen()
        assert self._server is not None
        try:
            await self._server.start_serving()
        except (
            OSError
        ) as exc:  # another process began listening on the port since it was bound
            raise bind_failure(exc, self.config.host, self.config.port) or exc from None

    @property
    def shutting_down(self) -> bool:
        """Set once shutdown began (a property, so a loop that checked it once reads it again)."""
        return self._closing

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def serve_until_signal(self) -> None:
        """Serve until SIGINT or SIGTERM, then shut down gracefully (``rawws.server.lifecycle`` runs a whole start)."""
        with stop_signals() as stopped:
            await stopped
            await drain(self.readiness, self.config.drain_delay_s, STOP_SIGNALS)
        await self.shutdown()

    def stop_listening(self) -> None:
        """Close the listening socket (after a failed start; ``shutdown`` does it for a started server)."""
        if self._server is not None:
            self._server.close()

    async def shutdown(self) -> None:
        """Stop accepting, close every WebSocket with 1001, wait a bounded time, then drop the rest."""
        self._closing = True
        self.readiness.draining = True
        if self._server is not None:
            self._server.close()
        log.info("shutting down: %d websocket(s) open", len(self.sessions))
        for reader in list(self._idle_readers):
            reader.feed_eof()  # between requests: nothing is lost by closing now
        sessions = list(self.sessions)
        for session in sessions:
            session.close(GOING_AWAY, "server shutting down")
        pending: list[asyncio.Future[None]] = [
            task for task in self._connections if not task.done()
        ]
        pending += [
            asyncio.ensure_future(session.wait_closed()) for session in sessions
        ]
        if pending:
            _, still_running = await asyncio.wait(
                pending, timeout=self.config.shutdown_timeout_s
            )
            for session in list(self.sessions):
                session.abort(GOING_AWAY, "server shutting down")
            for task in still_running:
                task.cancel()
            if still_running:
                await asyncio.wait(still_running, timeout=1.0)
        if self._server is not None:
            await self._server.wait_closed()
        await self.run_shutdown_hooks()

    async def run_shutdown_hooks(self, *, quietly: bool = False) -> None:
        """Close what the set-up opened (store, bus, metrics); ``quietly`` after a failed start, whose one line
        is the failure itself."""
        for hook in self.on_shutdown:
            try:
                await hook()
            except Exception:
                log.log(
                    logging.DEBUG if quietly else logging.ERROR,
                    "shutdown hook failed",
                    exc_info=not quietly,
                )

    # -- one TCP connection ----------------------------------------------------

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = _format_peer(writer.get_extra_info("peername"))
        handed_off = False
        try:
            handed_off = await self._serve_http(reader, writer, peer)
        except asyncio.CancelledError:
            writer.transport.abort()
        except (ConnectionError, OSError) as exc:
            log.debug("connection lost peer=%s: %r", peer, exc)
        except Exception:
            log.exception("connection failed peer=%s", peer)
        finally:
            self._connections.discard(task)
            if not handed_off and not writer.transport.is_closing():
                writer.close()

    async def _serve_http(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> bool:
        """Answer HTTP requests; ``True`` when the connection became a WebSocket (the session owns it now)."""
        conn = h11.Connection(
            h11.SERVER, max_incomplete_event_size=self.config.max_header_bytes
        )
        first = True
        while not self._closing:
            try:
                request = await self._read_request(conn, reader, peer, first)
            except _RequestTimeout as timeout:
                if timeout.partial:
                    self._write_error(conn, writer, HttpError(408, "request timed out"))
                return False
            except h11.RemoteProtocolError as exc:
                self._write_error(
                    conn,
                    writer,
                    HttpError(exc.error_status_hint, "malformed HTTP request"),
                )
                return False
            except HttpError as error:
                self._write_error(conn, writer, error)
                return False
            if request is None:
                return False
            first = False
            self.counters.http_requests += 1
            if self._trusted_proxies:
                request = forwarded_request(request, self._trusted_proxies)

            endpoint = self.endpoints.get(request.path)
            if endpoint is not None and self.shutting_down:
                # The open WebSockets were already told 1001; a new one would be left behind.
                self.counters.handshake(503)
                self._write(
                    conn,
                    writer,
                    error_response(HttpError(503, "server shutting down")),
                    request,
                )
            elif endpoint is not None:
                try:
                    accepted = decide_upgrade(request, endpoint.policy)
                    identity = (
                        endpoint.authenticate(request)
                        if endpoint.authenticate
                        else None
                    )
                    if inspect.isawaitable(
                        identity
                    ):  # e.g. a ticket spent in the store
                        identity = await identity
                    release = self.limits.admit(
                        identity.user if identity else None, request.peer
                    )  # or 429
                except HttpError as error:
                    log.debug(
                        "upgrade refused peer=%s path=%s status=%d",
                        request.peer,
                        request.path,
                        error.status,
                    )
                    self.counters.handshake(error.status)
                    self._write(conn, writer, error_response(error), request)
                else:
                    try:
                        self._upgrade(
                            conn,
                            reader,
                            writer,
                            request.peer,
                            request,
                            endpoint,
                            accepted,
                            identity,
                            release,
                        )
                    except BaseException:
                        release()
                        raise
                    return True
            else:
                response = await self._respond(request)
                log.debug(
                    "http %s %s -> %d peer=%s",
                    request.method,
                    request.path,
                    response.status,
                    request.peer,
                )
                self._write(conn, writer, response, request)

            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()
            else:
                return False
        return False

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader, peer: str, first: bool
    ) -> Request | None:
        """The next whole request (head and bounded body), or ``None`` when the client went away."""
        loop = asyncio.get_running_loop()
        # The first request must arrive whole within the handshake timeout; a
        # keep-alive connection may idle longer, but once a request starts it
        # gets the handshake timeout too, so trickling bytes cannot hold it.
        wait = (
            self.config.handshake_timeout_s if first else self.config.keepalive_idle_s
        )
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
                    self._idle_readers.add(reader)
                try:
                    async with asyncio.timeout_at(deadline):
                        data = await reader.read(READ_SIZE)
                except TimeoutError:
                    raise _RequestTimeout(partial=received_any) from None
                finally:
                    if idle:
                        self._idle_readers.discard(reader)
                if not received_any:
                    data = data.lstrip(
                        b"\r\n"
                    )  # RFC 7230 §3.5: ignore blank lines before a request
                    if data:
                        received_any = True
                        if not first:
                            deadline = loop.time() + self.config.handshake_timeout_s
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
                    max_target_bytes=self.config.max_target_bytes,
                    max_head_bytes=self.config.max_header_bytes,
                    max_body_bytes=self.config.max_body_bytes,
                )
            elif isinstance(event, h11.Data):
                body_bytes += len(event.data)
                if body_bytes > self.config.max_body_bytes:
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
                    peer=peer,
                    scheme="https" if self.config.tls else "http",
                )
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None

    async def _respond(self, request: Request) -> Response:
        try:
            handler = self.router.resolve(request.method, request.path)
            return await handler(request)
        except HttpError as error:
            return error_response(error)
        except Exception:
            log.exception("handler failed path=%s", request.path)
            return error_response(HttpError(500, "internal error"))

    async def _healthz(self, request: Request) -> Response:
        return json_response(
            200,
            {
                "status": "ok",
                "websockets": len(self.sessions),
                "slow_consumers_closed": self.counters.slow_consumers_closed,
            },
        )

    # -- writing HTTP ----------------------------------------------------------

    def _write(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        response: Response,
        request: Request | None = None,
        *,
        close: bool = False,
    ) -> None:
        headers = [
            SERVER_HEADER,
            *response.headers,
            ("Content-Length", str(len(response.body))),
        ]
        if close or self._closing:
            headers.append(("Connection", "close"))
        data = conn.send(
            h11.Response(
                status_code=response.status, headers=headers, reason=response.reason
            )
        )
        if response.body and not (request is not None and request.method == "HEAD"):
            data += conn.send(h11.Data(data=response.body))
        data += conn.send(h11.EndOfMessage())
        writer.write(data)

    def _write_error(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, error: HttpError
    ) -> None:
        """Answer a request we cannot go on with, then the caller closes the connection."""
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        log.debug("http error %d: %s", error.status, error.message)
        try:
            self._write(conn, writer, error_response(error), close=True)
        except h11.LocalProtocolError:
            pass

    # -- the upgrade -----------------------------------------------------------

    def _upgrade(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
        request: Request,
        endpoint: WebSocketEndpoint,
        accepted: AcceptedUpgrade,
        identity: Identity | None,
        release: Callable[[], None],
    ) -> None:
        """Answer 101 and hand the transport to a ``ServerConnection``; the HTTP task then ends."""
        assert conn.their_state is h11.MIGHT_SWITCH_PROTOCOL  # type: ignore[attr-defined]  # h11 exports it, without __all__
        # Not written here: the session writes it with the first frames (the chat's welcome), one send.
        response = conn.send(
            h11.InformationalResponse(
                status_code=101, headers=accepted.headers, reason=b"Switching Protocols"
            )
        )
        _set_send_buffer(writer, self.config.send_buffer_bytes)
        trailing_data, _ = conn.trailing_data
        initial_data = bytes(trailing_data) + _take_buffered(reader)
        ws = WebSocket(
            client=False,
            extensions=accepted.extensions,
            max_message_bytes=accepted.max_message_bytes,
        )
        # A stream's transport reads as well as writes (selector and SSL transports alike).
        session = ServerConnection(
            cast(asyncio.Transport, writer.transport),
            ws,
            endpoint.handler,
            self.config,
            path=request.path,
            peer=peer,
            subprotocol=accepted.subprotocol,
            compressed=any(
                isinstance(ext, PerMessageDeflate) for ext in accepted.extensions
            ),
            counters=self.counters,
            identity=identity,
            user=identity.user if identity else None,
            expires_at=identity.expires_at if identity else None,
            on_finished=self._session_finished,
            stream=writer,
        )
        self.counters.websockets_opened += 1
        self.counters.handshake(101)
        self.sessions.add(session)
        self._releases[session] = release
        session.start(initial_data, eof=reader.at_eof(), response=response or b"")

    def _session_finished(self, session: ServerConnection) -> None:
        self.sessions.discard(session)
        release = self._releases.pop(session, None)
        if release is not None:
            release()


def _set_send_buffer(writer: asyncio.StreamWriter, size: int) -> None:
    """``SO_SNDBUF`` of a WebSocket's socket, so the outbox (not the kernel's autotuned few MiB)
    is what a slow reader fills first; 0 leaves the kernel's default."""
    sock = writer.get_extra_info("socket")
    if size > 0 and sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


def _take_buffered(reader: asyncio.StreamReader) -> bytes:
    """What the stream reader holds beyond the upgrade request: a client may send frames right behind it.

    StreamReader has no public non-blocking read, hence ``_buffer`` (a bytearray since Python 3.4).
    """
    buffered: bytearray = reader._buffer  # type: ignore[attr-defined]  # private, no public equivalent
    data = bytes(buffered)
    buffered.clear()
    return data


def _format_peer(peername: object) -> str:
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peername)
