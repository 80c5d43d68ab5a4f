"""``Server``: one listening socket, its lifecycle, and the WebSocket endpoints and HTTP routes on it.

``rawws serve`` and ``rawws.serve`` both run one. Each accepted TCP connection
is an ``HttpConnection`` (``rawws.server.http11``) while it speaks HTTP/1.1,
then, once upgraded (``rawws.server.upgrade``), a ``ServerConnection``. As
``rawws.serve`` returns it::

    async with rawws.serve(handler, "127.0.0.1", 8765) as server:
        await server.serve_forever()   # until close(), or the task is cancelled
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Generator, Sequence
from types import TracebackType
from typing import Any

from rawws.aio.inbox import DEFAULT_MAX_QUEUE
from rawws.config import ServerConfig
from rawws.core.closecodes import GOING_AWAY
from rawws.core.counters import Counters
from rawws.core.forwarded import TrustedProxies, forwarded_request
from rawws.core.handshake import UpgradePolicy
from rawws.core.headers import is_token
from rawws.core.http import Request, Response, Router, error_response, json_response
from rawws.errors import HttpError
from rawws.server.connection import ServerConnection
from rawws.server.endpoint import (
    Authenticator,
    ConnectionHandler,
    Identity,
    ProcessRequest,
    WebSocketEndpoint,
    WebSocketHandler,
)
from rawws.server.http11 import HttpConnection
from rawws.server.limits import ConnectionLimits
from rawws.server.listening import bind_failure, server_ssl_context
from rawws.server.readiness import STOP_SIGNALS, Readiness, drain, stop_signals

__all__ = ["Authenticator", "Identity", "Server", "WebSocketEndpoint"]

log = logging.getLogger("rawws.server")


class Server:
    """A listening socket with plain HTTP routes and WebSocket endpoints on it."""

    def __init__(
        self,
        config: ServerConfig,
        router: Router | None = None,
        *,
        health_routes: bool = True,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        self.config = config
        self.router = router or Router()
        self.endpoints: dict[str, WebSocketEndpoint] = {}
        #: The endpoint of every path that has no endpoint or route of its own (``rawws.serve``'s).
        self.default_endpoint: WebSocketEndpoint | None = None
        self.counters = Counters()
        #: The open WebSockets (the ones that completed their opening handshake).
        self.connections: set[ServerConnection] = set()
        self.limits = ConnectionLimits(
            config.websockets_per_user, config.websockets_per_address
        )
        #: Readers of keep-alive connections waiting for their next request (shutdown ends those at once).
        self.idle_readers: set[asyncio.StreamReader] = set()
        self._releases: dict[ServerConnection, Callable[[], None]] = {}
        self._http_tasks: set[asyncio.Task[None]] = set()
        #: Accepted connections whose first request is not whole yet (no task of their own).
        self._arriving: set[HttpConnection] = set()
        self._all_arrived: asyncio.Future[None] | None = None
        self._handler_tasks: set[asyncio.Task[None]] = set()
        self._ssl = ssl
        #: Served over TLS (``tls_cert``/``tls_key``, or an ``ssl`` context given here).
        self.tls = config.tls or ssl is not None
        self._server: asyncio.Server | None = None
        self._closing = False
        self._shutdown: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        #: Run as shutdown begins, before connections are waited for (open event streams end).
        self.on_closing: list[Callable[[], None]] = []
        #: Run after every connection is gone (closing stores, executors, …).
        self.on_shutdown: list[Callable[[], Awaitable[None]]] = []
        self._trusted_proxies = TrustedProxies(config.forwarded_allow_ips)
        #: Where ``/metrics`` answers once started (``--metrics-port``), else ``None``.
        self.metrics_port: int | None = None
        #: ``/readyz``: the checks the app registers (store, bus) and the draining flag.
        self.readiness = Readiness(config.readiness_timeout_s)
        if health_routes:
            self.router.add("GET", "/healthz", self._healthz)
            self.router.add("GET", "/readyz", self.readiness.handle)

    def add_websocket(
        self,
        path: str | None,
        handler: ConnectionHandler | WebSocketHandler,
        *,
        subprotocols: Sequence[str] = (),
        authenticate: Authenticator | None = None,
        process_request: ProcessRequest | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
        max_message_bytes: int | None = None,
        keep_headers: bool = True,
    ) -> None:
        """Serve WebSockets at ``path`` (``None``: every path without a route or endpoint of its own).

        ``handler`` is ``async def handler(connection)`` or a ``WebSocketHandler``
        (``rawws.server.endpoint``); ``authenticate`` and ``process_request`` may
        refuse before any 101; ``max_queue`` bounds a coroutine handler's unread messages.
        ``max_message_bytes``: the largest message this path's protocol needs (at most
        the server's): a bigger one is closed with 1009 once that much is inflated.
        ``keep_headers=False``: ``connection.request.headers`` is empty once the upgrade is done
        (they were read by the handshake and ``authenticate``), for a handler that never reads them.
        """
        for name in subprotocols:
            # RFC 6455 §4.1: a subprotocol is a token. Checked once here, so the 101
            # (which may echo one of these names) needs no validation per handshake.
            if not is_token(name):
                raise ValueError(f"subprotocol {name!r} is not an HTTP token")
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        if max_message_bytes is not None and max_message_bytes < 1:
            raise ValueError("max_message_bytes must be at least 1")
        limit = self.config.max_message_bytes
        policy = UpgradePolicy(
            max_message_bytes=limit
            if max_message_bytes is None
            else min(limit, max_message_bytes),
            compression=self.config.compression,
            subprotocols=tuple(subprotocols),
            window_bits=self.config.compression_window_bits,
            memory_level=self.config.compression_memory_level,
        )
        endpoint = WebSocketEndpoint(
            policy, handler, authenticate, process_request, max_queue, keep_headers
        )
        if path is None:
            self.default_endpoint = endpoint
        else:
            self.endpoints[path] = endpoint

    def endpoint_for(self, path: str) -> WebSocketEndpoint | None:
        """The endpoint that upgrades ``path``, or ``None`` when a route (or a 404) answers it."""
        endpoint = self.endpoints.get(path)
        if endpoint is None and path not in self.router:
            return self.default_endpoint
        return endpoint

    # -- lifecycle -------------------------------------------------------------

    async def listen(self) -> None:
        """Bind, not listening yet (a client is refused until ``start``, as before it): the first step of a start,
        so a host or port that cannot be had (or TLS files that are wrong) is a ``SettingError`` naming it
        before anything else is made."""
        if self._server is not None:
            return
        cert, key = self.config.tls_cert, self.config.tls_key
        context = self._ssl
        if context is None and cert is not None and key is not None:
            context = server_ssl_context(cert, key)
        try:
            self._server = await asyncio.get_running_loop().create_server(
                lambda: HttpConnection(self),
                self.config.host,
                self.config.port,
                reuse_port=self.config.reuse_port or None,
                ssl=context,
                ssl_handshake_timeout=self.config.handshake_timeout_s
                if context is not None
                else None,
                start_serving=False,
            )
        except OSError as exc:
            raise bind_failure(exc, self.config.host, self.config.port) or exc from None
        _set_send_buffer(self._server.sockets, self.config.send_buffer_bytes)

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

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets (empty before ``listen``)."""
        return () if self._server is None else tuple(self._server.sockets)

    def is_serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def serve_forever(self) -> None:
        """Start if needed and serve until ``close()``; cancelling it closes the server first."""
        await self.start()
        try:
            await self.wait_closed()
        except asyncio.CancelledError:
            try:
                await self.shutdown()
            finally:
                raise

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

    def close(self) -> None:
        """Begin the graceful shutdown (``shutdown``) without waiting; ``wait_closed`` waits for its end."""
        if self._shutdown is None:
            self._shutdown = asyncio.get_running_loop().create_task(self._shut_down())

    async def wait_closed(self) -> None:
        """Return once the server was closed and its connections and handlers are done."""
        await self._closed.wait()

    async def shutdown(self) -> None:
        """Stop accepting, close every WebSocket with 1001, wait a bounded time, then drop the rest."""
        self.close()
        assert self._shutdown is not None
        await asyncio.shield(self._shutdown)

    async def _shut_down(self) -> None:
        try:
            await self._close_all()
        finally:
            self._closed.set()

    async def _close_all(self) -> None:
        self._closing = True
        self.readiness.draining = True
        if self._server is not None:
            self._server.close()
        log.info("shutting down: %d websocket(s) open", len(self.connections))
        for stopping in self.on_closing:
            stopping()
        for reader in list(self.idle_readers):
            reader.feed_eof()  # between requests: nothing is lost by closing now
        connections = list(self.connections)
        for connection in connections:
            connection._start_closing(GOING_AWAY, "server shutting down")
        pending: list[asyncio.Future[None]] = [
            task for task in self._http_tasks | self._handler_tasks if not task.done()
        ]
        pending += [asyncio.ensure_future(c.wait_closed()) for c in connections]
        if self._arriving:
            # Their requests are answered (503 for an upgrade) as they come, until the timeout.
            self._all_arrived = asyncio.get_running_loop().create_future()
            pending.append(self._all_arrived)
        if pending:
            _, still_running = await asyncio.wait(
                pending, timeout=self.config.shutdown_timeout_s
            )
            for connection in list(self.connections):
                connection.abort(GOING_AWAY, "server shutting down")
            for http in list(self._arriving):
                http.transport.abort()
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

    def __await__(self) -> Generator[Any, None, Server]:
        """``server = await rawws.serve(...)``: started."""
        return self._started().__await__()

    async def _started(self) -> Server:
        await self.start()
        return self

    async def __aenter__(self) -> Server:
        return await self._started()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    # -- connections -------------------------------------------------------------

    def arriving(self, http: HttpConnection) -> None:
        """A connection was accepted; its first request is on its way (shutdown waits for it, bounded)."""
        self._arriving.add(http)

    def arrived(self, http: HttpConnection) -> None:
        """Its first request is whole (or it ended, or timed out)."""
        self._arriving.discard(http)
        if not self._arriving and self._all_arrived is not None:
            if not self._all_arrived.done():
                self._all_arrived.set_result(None)

    def track_http(self, task: asyncio.Task[None]) -> None:
        """An HTTP connection's task (a route, keep-alive, an upgrade that waits): shutdown waits for it."""
        self._http_tasks.add(task)
        task.add_done_callback(self._http_tasks.discard)

    def forwarded(self, request: Request) -> Request:
        """``request`` with the client a trusted proxy names (``--forwarded-allow-ips``), else as it is."""
        if self._trusted_proxies:
            return forwarded_request(request, self._trusted_proxies)
        return request

    async def respond(self, request: Request) -> Response:
        """The route's answer to a plain HTTP request (404, 405, or 500 if the route failed)."""
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
                "websockets": len(self.connections),
                "slow_consumers_closed": self.counters.slow_consumers_closed,
            },
        )

    def connection_opened(
        self, connection: ServerConnection, release: Callable[[], None]
    ) -> None:
        """A WebSocket is open (``release`` gives its limit slots back when it ends)."""
        self.connections.add(connection)
        self._releases[connection] = release

    def connection_finished(self, connection: ServerConnection) -> None:
        self.connections.discard(connection)
        release = self._releases.pop(connection, None)
        if release is not None:
            release()

    def track(self, task: asyncio.Task[None]) -> None:
        """A coroutine handler's task: shutdown waits for it (then cancels it)."""
        self._handler_tasks.add(task)
        task.add_done_callback(self._handler_tasks.discard)


def _set_send_buffer(listeners: Sequence[socket.socket], size: int) -> None:
    """``SO_SNDBUF`` of every accepted socket (0 leaves the kernel's own), so the outbox (not the kernel's
    autotuned few MiB) is what a slow reader fills first, on a WebSocket and a streamed response alike.

    Set once on the listening sockets: Linux and the BSDs give an accepted socket its listener's
    buffer sizes, so no connection pays a ``setsockopt`` of its own.
    """
    if size <= 0:
        return
    for listener in listeners:
        with contextlib.suppress(OSError):
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
