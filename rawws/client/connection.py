"""``ClientConnection``, the asyncio protocol of one client WebSocket: it moves bytes and keeps time, the
sans-I/O core parses them (how it writes, reads, keeps alive and closes: ``rawws.client.connect``)."""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any

from rawws.aio.closed import closed_error
from rawws.aio.inbox import DEFAULT_MAX_QUEUE, Inbox
from rawws.config import (
    DEFAULT_CLOSE_TIMEOUT_S,
    DEFAULT_PING_INTERVAL_S,
    DEFAULT_PING_TIMEOUT_S,
    DEFAULT_WRITE_HIGH_WATER_BYTES,
)
from rawws.core.client_handshake import ClientHandshake, ClientUpgrade
from rawws.core.closecodes import ABNORMAL_CLOSURE, NORMAL_CLOSURE
from rawws.core.events import Closed, PongReceived
from rawws.core.keepalive import (
    KEEPALIVE_FAILURE_CODE,
    KEEPALIVE_FAILURE_REASON,
    Due,
    Keepalive,
)
from rawws.core.protocol import State, WebSocket
from rawws.errors import InvalidHandshake

log = logging.getLogger("rawws.client")

# The keepalive, close, message-size and write-buffer defaults are the server's (rawws.config);
# the receive queue's is the inbox's (rawws.aio.inbox): the same at both ends.


class ClientConnection(asyncio.Protocol):
    """One client WebSocket. Made by ``connect``; use ``send``, ``recv``, ``ping``, ``close``."""

    def __init__(
        self,
        handshake: ClientHandshake,
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        ping_interval: float | None = DEFAULT_PING_INTERVAL_S,
        ping_timeout: float | None = DEFAULT_PING_TIMEOUT_S,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT_S,
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self._loop = asyncio.get_running_loop()
        self._handshake = handshake
        self.max_queue = max_queue
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.transport: asyncio.Transport | None = None
        self.ws: WebSocket | None = None
        #: The subprotocol the server chose, or ``None``.
        self.subprotocol: str | None = None
        #: The negotiated ``Sec-WebSocket-Extensions`` value, or ``None`` (no compression).
        self.compression: str | None = None
        #: The 101 answer's headers (names in lower case).
        self.response_headers: list[tuple[str, str]] = []
        #: How the connection ended: the close code (1006: lost without a closing handshake).
        self.close_code: int | None = None
        self.close_reason = ""
        #: True when our close frame was not answered within ``close_timeout``.
        self.close_timed_out = False

        self._opened: asyncio.Future[None] = self._loop.create_future()
        self._lost: asyncio.Future[None] = self._loop.create_future()
        # Receiving: messages not yet read, bytes not yet parsed (from the 101 on).
        self._inbox: Inbox | None = None
        self._eof = False  # the server closed its side of TCP
        # Sending.
        self._writing_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        # Pings: payload -> (sent at, future for ping() callers or None for keepalive), oldest first.
        self._pings: collections.OrderedDict[
            bytes, tuple[float, asyncio.Future[float] | None]
        ] = collections.OrderedDict()
        self._keepalive: Keepalive | None = None  # from the 101 on
        self._keepalive_ping: bytes | None = None
        self._keepalive_timer: asyncio.TimerHandle | None = None
        self._drop_timer: asyncio.TimerHandle | None = None

    # -- the public API ----------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the WebSocket is over (``close_code`` is set)."""
        return self.close_code is not None

    @property
    def queued_messages(self) -> int:
        """Messages received and not yet taken by ``recv()`` (never more than ``max_queue``)."""
        return 0 if self._inbox is None else len(self._inbox)

    async def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send one message: ``str`` as text, bytes-like as binary. Waits while the socket is backed up."""
        if isinstance(message, (bytearray, memoryview)):
            message = bytes(message)
        elif not isinstance(message, (str, bytes)):
            raise TypeError(f"a message is str or bytes, not {type(message).__name__}")
        ws = self._open_ws()
        self._write(ws.send(message))
        await self._drain()

    def recv(self) -> Coroutine[Any, Any, str | bytes]:
        """The next message; ``ConnectionClosedOK``/``ConnectionClosedError`` once none is left and it is closed."""
        return self._receiving().get()

    def __aiter__(self) -> ClientConnection:
        return self

    def __anext__(self) -> Coroutine[Any, Any, str | bytes]:
        """Messages until a normal close; a close with an error code raises ``ConnectionClosedError``."""
        return self._receiving().get(iterating=True)

    def _receiving(self) -> Inbox:
        if self._inbox is None:
            raise RuntimeError("the connection is not open yet")
        return self._inbox

    async def ping(self, data: str | bytes | None = None) -> asyncio.Future[float]:
        """Send a ping; the returned future resolves to the round-trip time in seconds when the pong is in.

        ``pong_waiter = await ws.ping(); latency = await pong_waiter``. A pong
        also answers every earlier ping (RFC 6455 §5.5.3 lets a peer skip some).
        """
        ws = self._open_ws()
        if data is None:
            payload = os.urandom(4)
            while payload in self._pings:
                payload = os.urandom(4)
        else:
            payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
            if payload in self._pings:
                raise RuntimeError(
                    "a ping with this payload is already waiting for its pong"
                )
        waiter: asyncio.Future[float] = self._loop.create_future()
        self._pings[payload] = (self._loop.time(), waiter)
        self._write(ws.ping(payload))
        await self._drain()
        return waiter

    async def close(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        """Start (or join) the closing handshake and wait, at most ``close_timeout``, until TCP is closed."""
        ws = self.ws
        if ws is not None and ws.state is State.OPEN and not self._transport_closing():
            self._write(ws.close(code, reason))
        if self._inbox is not None:
            # Nothing is answered after our close: what is held goes now, and messages arriving
            # are dropped (or, read_while_closing, queued without a bound): read on to the server's close.
            self._inbox.drain()
        if self._lost.done():
            return
        try:
            async with asyncio.timeout(self.close_timeout):
                await asyncio.shield(self._lost)
        except TimeoutError:
            if self.close_code is None:
                self.close_timed_out = True
            log.debug("ws client close timed out; dropping the connection")
            if self.transport is not None:
                self.transport.abort()
            await asyncio.shield(self._lost)
        assert self._inbox is not None  # TCP was had, so the 101 was
        self._inbox.drain()  # what came before TCP closed is parsed: the close code is final

    async def wait_closed(self) -> None:
        """Wait until TCP is closed, however the connection ends."""
        await asyncio.shield(self._lost)

    async def __aenter__(self) -> ClientConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- asyncio.Protocol: the handshake, then frames ---------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # send() waits while more than this is unsent
        transport.set_write_buffer_limits(high=DEFAULT_WRITE_HIGH_WATER_BYTES)
        transport.write(self._handshake.request())

    def data_received(self, data: bytes) -> None:
        if self._inbox is None:
            if not self._opened.done():
                self._handshake_step(lambda: self._handshake.receive_data(data))
            return
        self._inbox.feed(data)

    def eof_received(self) -> bool | None:
        if self._inbox is None:
            if not self._opened.done():
                self._handshake_step(self._handshake.receive_eof)
            return None
        self._eof = True
        self._inbox.feed_eof()
        return (
            None  # let the transport close; what is still unparsed is parsed afterwards
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
        if self._drop_timer is not None:
            self._drop_timer.cancel()
        self._writing_paused = False
        self._wake_drainers()
        if not self._opened.done():
            reason = f": {exc}" if exc is not None else ""
            self._opened.set_exception(
                InvalidHandshake(
                    f"connection lost during the opening handshake{reason}"
                )
            )
        elif self._inbox is not None:
            self._eof = True
            self._inbox.feed_eof()
        if not self._lost.done():
            self._lost.set_result(None)
        log.debug("ws client connection lost code=%s", self.close_code)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_drainers()

    # -- the opening handshake ---------------------------------------------------

    def _handshake_step(self, step: Callable[[], ClientUpgrade | None]) -> None:
        try:
            upgrade = step()
        except InvalidHandshake as exc:
            self._opened.set_exception(exc)
            assert self.transport is not None
            self.transport.close()
            return
        if upgrade is not None:
            self._start(upgrade)

    def _start(self, upgrade: ClientUpgrade) -> None:
        self.ws = ws = WebSocket(
            client=True,
            extensions=upgrade.extensions,
            max_message_bytes=upgrade.max_message_bytes,
        )
        assert self.transport is not None
        self._inbox = Inbox(ws, self.transport, self, max_queue=self.max_queue)
        self.subprotocol = upgrade.subprotocol
        self.compression = upgrade.compression
        self.response_headers = upgrade.headers
        self._opened.set_result(None)
        self._keepalive = Keepalive(
            self.ping_interval, self.ping_timeout, self._loop.time()
        )
        self._arm_keepalive()
        if upgrade.trailing_data:
            # Frames that came with the 101: parsed once the application holds the connection.
            self._inbox.feed_later(upgrade.trailing_data)

    async def _wait_open(self) -> None:
        await self._opened

    def _abandon(self) -> None:
        """The opening handshake was given up (timeout, cancel): drop TCP and silence the pending result."""
        if not self._opened.done():
            self._opened.cancel()
        if self.transport is not None:
            self.transport.abort()

    # -- what the inbox hands back (rawws.aio.inbox.InboxOwner) --------------------------

    def _inbox_output(self, data: bytes) -> None:
        self._write(data)

    def _inbox_event(self, event: PongReceived | Closed) -> None:
        """A pong, or the end: ``close_code`` is the code of the server's close frame when there was
        one (normally the echo of ours), else the code we failed with, else 1006."""
        if type(event) is PongReceived:
            self._pong_received(event.payload)
        elif type(event) is Closed:
            self._closed(event.code, event.reason or "")

    def _inbox_done(self) -> None:
        inbox = self._inbox
        if (
            self.ws is not None
            and self.ws.close_transport
            and inbox is not None
            and not inbox.holding
        ):
            self._core_closed()

    # -- the end of the connection -------------------------------------------------

    def _closed(self, code: int, reason: str) -> None:
        """The WebSocket is over: record how, wake the reader, fail what waits for pongs."""
        if self.close_code is not None:
            return
        self.close_code, self.close_reason = code, reason
        log.debug("ws client closed code=%d", code)
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
        if self._inbox is not None:
            self._inbox.end(code, reason)
        pings, self._pings = self._pings, collections.OrderedDict()
        for _, waiter in pings.values():
            if waiter is not None and not waiter.done():
                waiter.set_exception(closed_error(code, reason))
                waiter.exception()  # retrieved here: a caller that never awaits it gets no warning

    def _core_closed(self) -> None:
        """The core is done: RFC 6455 §7.1.1 lets the server close TCP first; we wait ``close_timeout`` for it."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._eof:
            transport.close()
        elif self._drop_timer is None:
            self._drop_timer = self._loop.call_later(
                self.close_timeout, transport.abort
            )

    def _transport_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    # -- sending -----------------------------------------------------------------------

    def _open_ws(self) -> WebSocket:
        """The core, if messages may still be sent (also replies to what came before a close that
        is not answered yet: ``rawws.aio.inbox``); else the ``ConnectionClosed`` to raise."""
        ws = self.ws
        if ws is None:
            raise RuntimeError("the connection is not open yet")
        if not ws.can_send or self._transport_closing():
            code = (
                self.close_code
                if self.close_code is not None
                else (ws.close_code or ABNORMAL_CLOSURE)
            )
            raise closed_error(code, self.close_reason or ws.close_reason)
        return ws

    def _write(self, data: bytes) -> None:
        if data and not self._transport_closing():
            assert self.transport is not None
            self.transport.write(data)

    async def _drain(self) -> None:
        if self._writing_paused and not self._lost.done():
            waiter = self._loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter
        if self._lost.done() and self.close_code is None:
            raise closed_error(ABNORMAL_CLOSURE, "connection lost")

    def _wake_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- keepalive -----------------------------------------------------------------------

    def _arm_keepalive(self) -> None:
        """One timer, at the next deadline the core keepalive (``rawws.core.keepalive``) names."""
        deadline = (
            self._keepalive.next_deadline if self._keepalive is not None else None
        )
        if deadline is not None:
            self._keepalive_timer = self._loop.call_at(deadline, self._keepalive_due)

    def _keepalive_due(self) -> None:
        ws, keepalive = self.ws, self._keepalive
        if (
            ws is None
            or keepalive is None
            or ws.state is not State.OPEN
            or self._transport_closing()
        ):
            return
        now = self._loop.time()
        # The pong may sit behind messages nobody read yet: data is flowing, so the server is alive.
        inbox = self._inbox
        alive = inbox is not None and (inbox.reading_paused or inbox.work_pending)
        due = keepalive.due(
            now, awaiting_pong=self._keepalive_ping in self._pings, peer_alive=alive
        )
        if due is Due.PONG_OVERDUE:
            log.info(
                "ws client keepalive timeout: no pong within %ss", self.ping_timeout
            )
            self._write(ws.close(KEEPALIVE_FAILURE_CODE, KEEPALIVE_FAILURE_REASON))
            ws.abort(KEEPALIVE_FAILURE_CODE, KEEPALIVE_FAILURE_REASON)
            self._closed(KEEPALIVE_FAILURE_CODE, KEEPALIVE_FAILURE_REASON)
            assert self.transport is not None
            self.transport.abort()
            return
        if due is Due.PING:
            self._keepalive_ping = payload = os.urandom(4)
            self._pings[payload] = (now, None)
            self._write(ws.ping(payload))
            keepalive.ping_sent(now)
        self._arm_keepalive()

    def _pong_received(self, payload: bytes) -> None:
        if payload not in self._pings:
            return  # unsolicited pongs are allowed (RFC 6455 §5.5.3) and mean nothing
        now = self._loop.time()
        while self._pings:
            key, (sent_at, waiter) = self._pings.popitem(last=False)
            if waiter is not None and not waiter.done():
                waiter.set_result(now - sent_at)
            if key == payload:
                break
