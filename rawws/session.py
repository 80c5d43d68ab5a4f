"""The edge of one open WebSocket: read → feed the core → dispatch → write what it produced.

One task per connection reads; writes are coalesced: everything one read
produces leaves in one ``transport.write``, and anything pushed from outside a
read (fan-out from another connection, a keepalive ping) is flushed once per
event-loop turn, by one callback for all the connections that have something
pending (a fan-out to 1,000 receivers schedules one callback, not 1,000). When the socket stops draining, frames wait in the bounded
``Outbox`` and this connection's own reading pauses; a push that does not fit
applies the slow-consumer policy (close 1008) instead of growing memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Protocol

from rawws.auth import Identity
from rawws.config import ServerConfig
from rawws.connection import (
    GOING_AWAY,
    INTERNAL_ERROR,
    POLICY_VIOLATION,
    State,
    WebSocket,
)
from rawws.events import Closed, MessageReceived
from rawws.outbox import Outbox

log = logging.getLogger("rawws.server")

READ_SIZE = 64 * 1024


class WebSocketHandler(Protocol):
    """What an endpoint does with a connection. Called synchronously: it must never await a peer."""

    def on_open(self, session: WebSocketSession) -> None: ...

    def on_message(self, session: WebSocketSession, data: str | bytes) -> None: ...

    def on_close(self, session: WebSocketSession, code: int) -> None: ...


class SessionStats(Protocol):
    slow_consumers_closed: int


class _Flusher:
    """Per event loop: the sessions pushed to outside their own read, flushed together once per turn."""

    __slots__ = ("_loop", "_dirty", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: list[WebSocketSession] = []

    def add(self, session: WebSocketSession) -> None:
        if not self._dirty:
            self._loop.call_soon(self._flush_all)
        self._dirty.append(session)

    def _flush_all(self) -> None:
        dirty, self._dirty = self._dirty, []
        for session in dirty:
            try:
                session._flush()
            except Exception:  # one broken transport must not keep the others' frames back
                log.exception("ws flush failed peer=%s", session.peer)
                session.ws.abort(INTERNAL_ERROR, "flush failed")
                session.transport.abort()


_flushers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flusher] = weakref.WeakKeyDictionary()


def _flusher_for(loop: asyncio.AbstractEventLoop) -> _Flusher:
    flusher = _flushers.get(loop)
    if flusher is None:
        flusher = _flushers[loop] = _Flusher(loop)
    return flusher


class WebSocketSession:
    """One accepted WebSocket on an asyncio stream pair."""

    # Slots, not a __dict__: this object exists once per open connection.
    __slots__ = (
        "reader",
        "writer",
        "transport",
        "ws",
        "handler",
        "config",
        "path",
        "peer",
        "subprotocol",
        "compressed",
        "stats",
        "identity",
        "outbox",
        "_loop",
        "_flusher",
        "_in_read_batch",
        "_flush_scheduled",
        "_paused",
        "_resumed",
        "_ping_timer",
        "_pong_timer",
        "_close_timer",
        "_expiry_timer",
        "_opened_at",
        "_finished",
        "__weakref__",
    )

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        ws: WebSocket,
        handler: WebSocketHandler,
        config: ServerConfig,
        *,
        path: str,
        peer: str,
        subprotocol: str | None = None,
        compressed: bool = False,
        stats: SessionStats | None = None,
        identity: Identity | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        self.ws = ws
        self.handler = handler
        self.config = config
        self.path = path
        self.peer = peer
        self.subprotocol = subprotocol
        self.compressed = compressed
        self.stats = stats
        #: Who the token said this is (``None`` on unauthenticated endpoints such as /echo).
        self.identity = identity
        self.outbox = Outbox(config.outbox_max_bytes, config.outbox_max_messages)
        self._loop = asyncio.get_running_loop()
        self._flusher = _flusher_for(self._loop)
        self._in_read_batch = False
        self._flush_scheduled = False
        self._paused = False
        self._resumed: asyncio.Future[None] | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._expiry_timer: asyncio.TimerHandle | None = None
        self._opened_at = self._loop.time()
        self._finished = False
        self.transport.set_write_buffer_limits(high=config.write_high_water_bytes)

    # -- the read loop --------------------------------------------------------

    async def run(self, initial_data: bytes = b"") -> None:
        """Serve the connection until it closes; never raises for anything the peer does."""
        user = self.identity.user if self.identity else "-"
        log.info("ws open peer=%s path=%s user=%s compression=%s", self.peer, self.path, user, self.compressed)
        self._schedule_ping()
        self._schedule_expiry()
        try:
            self.handler.on_open(self)
            if initial_data:
                self._feed(initial_data)
            while not self.ws.close_transport:
                if self._paused:
                    await self._wait_resumed()
                    continue
                data = await self.reader.read(READ_SIZE)
                if not data:
                    self._feed_eof()
                    break
                self._feed(data)
        except (ConnectionError, OSError) as exc:
            log.debug("ws read failed peer=%s: %r", self.peer, exc)
            self._finish_closed(self.ws.close_code or 1006)
        except asyncio.CancelledError:
            self.ws.abort(GOING_AWAY, "cancelled")
            self._finish_closed(GOING_AWAY)
            raise
        except Exception:
            log.exception("ws handler failed peer=%s path=%s", self.peer, self.path)
            self._push(self.ws.close(INTERNAL_ERROR, "internal error"), control=True)
            self.ws.abort(INTERNAL_ERROR, "internal error")
            self._finish_closed(INTERNAL_ERROR)
        finally:
            await self._close_transport()

    def _feed(self, data: bytes) -> None:
        """Process everything one read brought, then write all replies at once."""
        self._in_read_batch = True
        ws = self.ws
        try:
            for event in ws.receive_data(data):
                pending = ws.data_to_send()
                if pending:
                    self._push(pending, control=True)
                if type(event) is MessageReceived:
                    self.handler.on_message(self, event.data)
                elif type(event) is Closed:
                    self._finish_closed(event.code)
            pending = ws.data_to_send()
            if pending:
                self._push(pending, control=True)
        finally:
            self._in_read_batch = False
        self._flush()

    def _feed_eof(self) -> None:
        for event in self.ws.receive_eof():
            if type(event) is Closed:
                self._finish_closed(event.code)

    # -- sending ---------------------------------------------------------------

    @property
    def open(self) -> bool:
        return self.ws.state is State.OPEN and not self.outbox.overflowed

    def send(self, message: str | bytes) -> bool:
        """Queue one message; ``False`` when the connection is closing or was too slow."""
        if not self.open:
            return False
        return self._push(self.ws.send(message))

    def send_frame(self, frame: bytes) -> bool:
        """Queue frame bytes encoded elsewhere (the same bytes for many receivers)."""
        if not self.open:
            return False
        return self._push(frame)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; TCP is dropped if the peer does not finish it in time."""
        if self.ws.state is not State.OPEN:
            return
        self._push(self.ws.close(code, reason), control=True)
        self._close_timer = self._loop.call_later(self.config.close_timeout_s, self._close_timed_out)

    def _push(self, data: bytes, *, control: bool = False) -> bool:
        if not data:
            return True
        if control:
            self.outbox.push_control(data)
        elif not self.outbox.push(data):
            self._slow_consumer()
            return False
        if not self._in_read_batch and not self._flush_scheduled:
            self._flush_scheduled = True
            self._flusher.add(self)
        return True

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._paused or not self.outbox or self.transport.is_closing():
            return
        self.transport.write(self.outbox.take())
        if self.transport.get_write_buffer_size() > self.config.write_high_water_bytes:
            self._paused = True
            self._loop.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            await self.writer.drain()
        except (ConnectionError, OSError):
            self.ws.abort()
            return
        finally:
            self._paused = False
            if self._resumed is not None and not self._resumed.done():
                self._resumed.set_result(None)
        self._flush()

    async def _wait_resumed(self) -> None:
        if self._resumed is None or self._resumed.done():
            self._resumed = self._loop.create_future()
        await asyncio.shield(self._resumed)

    async def wait_writable(self) -> None:
        """Return once the socket drains again (at once if it is not backed up)."""
        while self._paused and not self.ws.close_transport:
            await self._wait_resumed()

    def _slow_consumer(self) -> None:
        """The documented policy: a peer that cannot keep up is closed with 1008 and counted."""
        if self.stats is not None:
            self.stats.slow_consumers_closed += 1
        log.warning(
            "ws slow consumer peer=%s path=%s queued_bytes=%d", self.peer, self.path, self.outbox.pending_bytes
        )
        self.close(POLICY_VIOLATION, "slow consumer")

    # -- keepalive and timeouts ------------------------------------------------

    def _schedule_ping(self) -> None:
        if self.config.ping_interval_s > 0:
            self._ping_timer = self._loop.call_later(self.config.ping_interval_s, self._send_ping)

    def _send_ping(self) -> None:
        if self.ws.state is not State.OPEN:
            return
        self._push(self.ws.ping(), control=True)
        self._pong_timer = self._loop.call_later(self.config.ping_timeout_s, self._check_pong)
        self._schedule_ping()

    def _check_pong(self) -> None:
        if self.ws.awaiting_pong and self.ws.state is State.OPEN:
            log.info("ws keepalive timeout peer=%s path=%s", self.peer, self.path)
            self.ws.abort(1006, "keepalive timeout")
            self.transport.abort()

    def _schedule_expiry(self) -> None:
        if self.identity is not None:
            delay = max(0.0, self.identity.expires_at - time.time())
            self._expiry_timer = self._loop.call_later(delay, self._token_expired)

    def _token_expired(self) -> None:
        log.info("ws token expired peer=%s path=%s", self.peer, self.path)
        self.close(POLICY_VIOLATION, "token expired")

    def _close_timed_out(self) -> None:
        if self.ws.state is not State.CLOSED:
            self.ws.abort()
        self.transport.abort()

    # -- the end -----------------------------------------------------------------

    def _finish_closed(self, code: int) -> None:
        """Runs once: tell the handler, stop the timers, log the close line."""
        if self._finished:
            return
        self._finished = True
        for timer in (self._ping_timer, self._pong_timer, self._expiry_timer):
            if timer is not None:
                timer.cancel()
        duration = self._loop.time() - self._opened_at
        log.info("ws close peer=%s path=%s code=%d duration=%.3fs", self.peer, self.path, code, duration)
        try:
            self.handler.on_close(self, code)
        except Exception:
            log.exception("ws close handler failed peer=%s path=%s", self.peer, self.path)

    async def _close_transport(self) -> None:
        """Write what is pending, close TCP, and wait a bounded time for it to go."""
        self._finish_closed(self.ws.close_code or 1006)
        if self._close_timer is not None:
            self._close_timer.cancel()
        if not self.transport.is_closing():
            if self.outbox:
                self.transport.write(self.outbox.take())  # ends with our close frame, if any
            self.writer.close()
        try:
            async with asyncio.timeout(self.config.close_timeout_s):
                await self.writer.wait_closed()
        except (TimeoutError, ConnectionError, OSError):
            self.transport.abort()
