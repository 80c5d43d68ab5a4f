"""The asyncio WebSocket client: ``async with rawws.connect(url) as ws`` on the same sans-I/O core as the server.

    async with rawws.connect("wss://example.com/ws") as ws:
        await ws.send("hello")
        reply = await ws.recv()
        async for message in ws:
            ...

How it is put together: ``ClientHandshake`` (h11) writes the upgrade request
and judges the answer; the ``WebSocket`` core (wsproto) then turns bytes into
events. This module only moves bytes and keeps time:

* **Coalesced writes.** Whatever the core produces while handling what was read
  (pongs, the close answer) leaves in one ``transport.write``.
* **Ordered replies.** When a message is handed to a ``recv()`` that was
  waiting, parsing stops until that task has run, so a reply it sends goes out
  before anything the following frames make us send (say, a close for a bad
  frame that came in the same packet).
* **Backpressure.** At most ``max_queue`` received messages wait for ``recv()``.
  When the queue is full, parsing stops and the socket is no longer read, so
  TCP slows the server down instead of our memory growing.
* **Keepalive.** A ping every ``ping_interval`` seconds; no pong within
  ``ping_timeout`` fails the connection with 1011 (unless unread data is
  queued ahead of the pong, which shows the server is alive).
* **Closing.** ``close()`` sends a close frame and waits up to ``close_timeout``
  for the server's answer and for the server to close TCP (RFC 6455 §7.1.1),
  then drops the connection itself. Messages that arrive after our close frame
  are dropped, unless ``read_while_closing``: then ``recv()`` returns them
  (the replies to what was sent before the close, as ``rawws send`` prints
  them); read them while ``close()`` runs, since their queue has no bound then.
* **Tracing.** ``trace`` is called with each frame sent or received
  (``rawws.core.trace.TracedFrame``), as ``rawws send -v`` shows them.

Errors: ``HandshakeRejected`` (HTTP status, headers, body) and
``InvalidHandshake`` from ``client_handshake``; ``ConnectionClosedOK`` after a
normal close (1000, 1001, or a close frame without a code) and
``ConnectionClosedError`` after anything else, both carrying ``code`` and
``reason``; ``OSError`` when TCP or TLS cannot be set up; ``TimeoutError``
when the opening handshake takes longer than ``open_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import Generator, Sequence
from types import TracebackType
from typing import Any, TypedDict

from rawws.aio.closed import OK_CLOSE_CODES, closed_error
from rawws.aio.inbox import DEFAULT_MAX_QUEUE
from rawws.client.connection import ClientConnection
from rawws.config import (
    DEFAULT_CLOSE_TIMEOUT_S,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_PING_INTERVAL_S,
    DEFAULT_PING_TIMEOUT_S,
)
from rawws.core.client_handshake import (
    ClientHandshake,
    ClientUpgrade,
    WebSocketURI,
    parse_uri,
)
from rawws.core.trace import FrameTrace
from rawws.errors import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeRejected,
    InvalidHandshake,
    InvalidURI,
)

__all__ = [
    "OK_CLOSE_CODES",
    "ClientConnection",
    "ConnectOptions",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "HandshakeRejected",
    "InvalidHandshake",
    "InvalidURI",
    "closed_error",
    "connect",
    "ssl_context",
]

log = logging.getLogger("rawws.client")

DEFAULT_OPEN_TIMEOUT_S = 10.0  # TCP + TLS + the opening handshake


def ssl_context(insecure: bool = False) -> ssl_module.SSLContext:
    """The TLS settings of every client connection (the WebSocket and the login requests alike).

    The system CAs and host name are checked unless ``insecure`` (a test server's
    self-signed certificate); ALPN says HTTP/1.1, the only HTTP the client speaks.
    """
    context = ssl_module.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl_module.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


class ConnectOptions(TypedDict, total=False):
    """``connect``'s keyword arguments, for callers that build them once and connect several times."""

    subprotocols: Sequence[str]
    additional_headers: Sequence[tuple[str, str]] | dict[str, str]
    compression: str | None
    max_size: int | None
    max_queue: int
    open_timeout: float | None
    ping_interval: float | None
    ping_timeout: float | None
    close_timeout: float
    ssl: ssl_module.SSLContext | None
    insecure: bool
    read_while_closing: bool
    trace: FrameTrace | None


class _WatchedConnection(ClientConnection):
    """A ``ClientConnection`` whose core keeps the messages that come after our close, or traces its frames.

    Set on the core as soon as it exists: ``_start`` leaves the frames that came
    with the 101 to a later turn of the loop, so none is parsed before this.
    """

    def __init__(
        self,
        handshake: ClientHandshake,
        *,
        read_while_closing: bool,
        trace: FrameTrace | None,
        **options: Any,
    ) -> None:
        super().__init__(handshake, **options)
        self._read_while_closing = read_while_closing
        self._trace = trace

    def _start(self, upgrade: ClientUpgrade) -> None:
        super()._start(upgrade)
        assert self.ws is not None
        self.ws.receive_while_closing = self._read_while_closing
        if self._trace is not None:
            self.ws.trace_frames(self._trace)


class connect:  # used like a function: `await connect(...)` or `async with connect(...)`
    """Open a WebSocket client connection to ``uri`` (``ws://`` or ``wss://``).

    ``subprotocols`` are offered in order of preference; ``additional_headers``
    go on the upgrade request (``Authorization``, ``Origin``, ...).
    ``compression="deflate"`` (the default) offers permessage-deflate; ``None``
    turns it off. ``max_size`` bounds a received message in bytes after
    inflation (more is closed with 1009; ``None``: no limit). For ``wss://``
    the server's certificate is checked against the system CAs; pass
    ``ssl=`` a context of your own, or ``insecure=True`` to check nothing.
    ``read_while_closing`` and ``trace``: see the module's docstring.
    """

    def __init__(
        self,
        uri: str,
        *,
        subprotocols: Sequence[str] = (),
        additional_headers: Sequence[tuple[str, str]] | dict[str, str] = (),
        compression: str | None = "deflate",
        max_size: int | None = DEFAULT_MAX_MESSAGE_BYTES,
        max_queue: int = DEFAULT_MAX_QUEUE,
        open_timeout: float | None = DEFAULT_OPEN_TIMEOUT_S,
        ping_interval: float | None = DEFAULT_PING_INTERVAL_S,
        ping_timeout: float | None = DEFAULT_PING_TIMEOUT_S,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT_S,
        ssl: ssl_module.SSLContext | None = None,
        insecure: bool = False,
        read_while_closing: bool = False,
        trace: FrameTrace | None = None,
    ) -> None:
        if compression not in ("deflate", None):
            raise ValueError(
                f"unsupported compression {compression!r}: use 'deflate' or None"
            )
        self.uri: WebSocketURI = parse_uri(uri)
        if not self.uri.secure and (ssl is not None or insecure):
            raise ValueError("ssl and insecure apply to wss:// URLs only")
        self._subprotocols = tuple(subprotocols)
        self._headers = (
            list(additional_headers.items())
            if isinstance(additional_headers, dict)
            else list(additional_headers)
        )
        self._compression = compression is not None
        self._max_size = max_size
        self._handshake()  # reject bad headers now, before any connection
        self._max_queue = max_queue
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._close_timeout = close_timeout
        self.open_timeout = open_timeout
        self._ssl = ssl
        self._insecure = insecure
        self._read_while_closing = read_while_closing
        self._trace = trace
        self._connection: ClientConnection | None = None

    def _handshake(self) -> ClientHandshake:
        """A fresh handshake (a fresh key) for each opening."""
        return ClientHandshake(
            self.uri,
            subprotocols=self._subprotocols,
            extra_headers=self._headers,
            compression=self._compression,
            max_message_bytes=self._max_size,
        )

    def _ssl_context(self) -> ssl_module.SSLContext | None:
        if not self.uri.secure:
            return None
        return self._ssl if self._ssl is not None else ssl_context(self._insecure)

    async def _open(self) -> ClientConnection:
        loop = asyncio.get_running_loop()
        options: dict[str, Any] = {
            "max_queue": self._max_queue,
            "ping_interval": self._ping_interval,
            "ping_timeout": self._ping_timeout,
            "close_timeout": self._close_timeout,
        }
        if self._read_while_closing or self._trace is not None:
            connection: ClientConnection = _WatchedConnection(
                self._handshake(),
                read_while_closing=self._read_while_closing,
                trace=self._trace,
                **options,
            )
        else:
            connection = ClientConnection(self._handshake(), **options)
        context = self._ssl_context()
        try:
            async with asyncio.timeout(self.open_timeout):
                await loop.create_connection(
                    lambda: connection,
                    self.uri.host,
                    self.uri.port,
                    ssl=context,
                    server_hostname=self.uri.host if context is not None else None,
                )
                await connection._wait_open()
        except BaseException:
            connection._abandon()
            raise
        log.debug(
            "ws client open %s subprotocol=%s compression=%s",
            self.uri.display,
            connection.subprotocol,
            connection.compression,
        )
        return connection

    def __await__(self) -> Generator[Any, None, ClientConnection]:
        return self._open().__await__()

    async def __aenter__(self) -> ClientConnection:
        self._connection = await self._open()
        return self._connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._connection is not None
        await self._connection.close()
