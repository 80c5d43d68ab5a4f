"""The edge of one open WebSocket: bytes from the transport → the core → dispatch → bytes to the transport.

Once the upgrade is answered, the server hands the connection's transport to
its ``ServerConnection``, which is the transport's protocol from then on:
``data_received`` feeds the sans-I/O core and dispatches its events at once.
No task waits on a read per connection, so an idle WebSocket costs a few
objects, not a task with its coroutine frames and a stream pair, and a
message is answered in the same loop turn it arrived in.

Writes are coalesced: everything one ``data_received`` produces leaves in one
``transport.write``, and anything pushed from outside it (fan-out from another
connection, a keepalive ping) is flushed once per event-loop turn, by one
callback for all the connections that have something pending (a fan-out to
1,000 receivers schedules one callback, not 1,000).

Backpressure: when the transport's buffer passes the high-water mark it calls
``pause_writing``; frames then wait in the bounded ``Outbox`` and this
connection's reading pauses; a push that does not fit applies the
slow-consumer policy (close 1008) instead of growing memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from typing import Protocol

from rawws.config import ServerConfig
from rawws.core.closecodes import INTERNAL_ERROR, POLICY_VIOLATION
from rawws.core.counters import Counters
from rawws.core.deflate import SharedFrame
from rawws.core.events import Closed, MessageReceived
from rawws.core.keepalive import (
    KEEPALIVE_FAILURE_CODE,
    KEEPALIVE_FAILURE_REASON,
    Due,
    Keepalive,
)
from rawws.core.outbox import Outbox
from rawws.core.protocol import State, WebSocket
from rawws.server.sweep import sweep_period, sweeper_for

log = logging.getLogger("rawws.server")


class WebSocketHandler(Protocol):
    """What an endpoint does with a connection. Called synchronously: it must never await a peer."""

    def on_open(self, session: ServerConnection) -> None: ...

    def on_message(self, session: ServerConnection, data: str | bytes) -> None: ...

    def on_close(self, session: ServerConnection, code: int) -> None: ...


class _Flusher:
    """Per event loop: the sessions pushed to outside their own read, flushed together once per turn."""

    __slots__ = ("_loop", "_dirty", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: list[ServerConnection] = []

    def add(self, session: ServerConnection) -> None:
        if not self._dirty:
            self._loop.call_soon(self._flush_all)
        self._dirty.append(session)

    def _flush_all(self) -> None:
        dirty, self._dirty = self._dirty, []
        for session in dirty:
            try:
                session._flush()
            except (
                Exception
            ):  # one broken transport must not keep the others' frames back
                log.exception("ws flush failed peer=%s", session.peer)
                session.abort(INTERNAL_ERROR, "flush failed")


_flushers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flusher] = (
    weakref.WeakKeyDictionary()
)


def _flusher_for(loop: asyncio.AbstractEventLoop) -> _Flusher:
    flusher = _flushers.get(loop)
    if flusher is None:
        flusher = _flushers[loop] = _Flusher(loop)
    return flusher


class ServerConnection(asyncio.Protocol):
    """One accepted WebSocket: the protocol of its transport once the upgrade is answered."""

    # Slots, not a __dict__: this object exists once per open connection.
    __slots__ = (
        "transport",
        "ws",
        "handler",
        "config",
        "path",
        "peer",
        "subprotocol",
        "compressed",
        "_shared_deflate_bits",
        "counters",
        "identity",
        "user",
        "expires_at",
        "outbox",
        "_loop",
        "_flusher",
        "_on_finished",
        "_stream",
        "_in_read_batch",
        "_flush_scheduled",
        "_paused",
        "_resumed",
        "_closed",
        "keepalive",
        "_sweeper",
        "_expires_at_loop",
        "_close_timer",
        "_opened_at",
        "_finished",
        "_lost",
        "__weakref__",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        ws: WebSocket,
        handler: WebSocketHandler,
        config: ServerConfig,
        *,
        path: str,
        peer: str,
        subprotocol: str | None = None,
        compressed: bool = False,
        counters: Counters | None = None,
        identity: object | None = None,
        user: str | None = None,
        expires_at: float | None = None,
        on_finished: Callable[[ServerConnection], None] | None = None,
        stream: object | None = None,
    ) -> None:
        self.transport = transport
        self.ws = ws
        self.handler = handler
        self.config = config
        self.path = path
        self.peer = peer
        self.subprotocol = subprotocol
        self.compressed = compressed
        self._shared_deflate_bits = ws.shared_deflate_bits if compressed else None
        self.counters = counters if counters is not None else Counters()
        #: Whatever the endpoint's authenticator returned, opaque here (``None`` on /echo).
        self.identity = identity
        #: Who the credential says this is, for the chat and the log lines.
        self.user = user
        #: When the credential expires (epoch seconds): the connection is closed with 1008 then.
        self.expires_at = expires_at
        self.outbox = Outbox(config.outbox_max_bytes, config.outbox_max_messages)
        self._loop = asyncio.get_running_loop()
        self._flusher = _flusher_for(self._loop)
        self._on_finished = on_finished
        # asyncio's StreamWriter closes its transport when it is garbage-collected,
        # so the HTTP side's writer must live as long as the WebSocket does.
        self._stream = stream
        self._in_read_batch = False
        self._flush_scheduled = False
        self._paused = False
        self._resumed: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] | None = None
        self._opened_at = now = self._loop.time()
        #: Pings and pong deadlines, decided in the core; checked by one sweep per loop (``rawws.server.sweep``).
        self.keepalive = Keepalive(config.ping_interval_s, config.ping_timeout_s, now)
        self._sweeper = sweeper_for(
            self._loop, sweep_period(config.ping_interval_s, config.ping_timeout_s)
        )
        # The credential's expiry on the loop's clock (the sweep compares loop times).
        self._expires_at_loop = (
            None if expires_at is None else now + max(0.0, expires_at - time.time())
        )
        self._close_timer: asyncio.TimerHandle | None = None
        self._finished = False
        self._lost = False

    # -- taking over the transport ---------------------------------------------

    def start(
        self, initial_data: bytes = b"", *, eof: bool = False, response: bytes = b""
    ) -> None:
        """Become the transport's protocol and process what arrived with the upgrade request.

        ``eof``: the peer had already closed its side before the hand-off. ``response``:
        the 101's bytes, written with whatever ``on_open`` and the first frames queue (one
        ``send`` for the 101 and the chat's welcome instead of two).
        """
        fields = {
            "peer": self.peer,
            "path": self.path,
            "user": self.user or "-",
            "compression": self.compressed,
        }
        log.info(
            "ws open peer=%(peer)s path=%(path)s user=%(user)s compression=%(compression)s",
            fields,
            extra=fields,
        )
        self.transport.set_write_buffer_limits(high=self.config.write_high_water_bytes)
        self.transport.set_protocol(self)
        if self.next_deadline is not None:
            self._sweeper.add(self)
        if self.transport.is_closing():
            self._lost = True
            self._finish_closed(1006)
            self._done()
            return
        if response:
            self.outbox.push_control(response)
        self._in_read_batch = (
            True  # what on_open queues leaves below, not in a flush scheduled for later
        )
        try:
            self._guarded(self.handler.on_open, self)
        finally:
            self._in_read_batch = False
        if initial_data:
            self.data_received(initial_data)
        if eof:
            self.eof_received()
        self._after_input()
        if not self._paused and not self.transport.is_closing():
            self.transport.resume_reading()  # the HTTP reader may have paused it

    async def wait_closed(self) -> None:
        """Return once the connection is over and its transport is gone."""
        if self._lost:
            return
        if self._closed is None:
            self._closed = self._loop.create_future()
        await asyncio.shield(self._closed)

    # -- asyncio.Protocol ------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Process everything one read brought, then write all replies at once."""
        if self.ws.close_transport:
            return
        self.counters.bytes_received += len(data)
        self._guarded(self._feed, data)
        self._after_input()

    def eof_received(self) -> bool:
        if self.ws.close_transport:
            return False
        for event in self.ws.receive_eof():
            if type(event) is Closed:
                self._finish_closed(event.code)
        self._after_input()
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            log.debug("ws connection lost peer=%s: %r", self.peer, exc)
        self._lost = True
        self.ws.abort()
        self._finish_closed(self.ws.close_code or 1006)
        self._wake_writers()
        self._done()

    def pause_writing(self) -> None:
        """The socket stopped draining: hold frames in the outbox, and stop reading this peer."""
        self._paused = True
        if not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if not self.transport.is_closing():
            self.transport.resume_reading()
        self._wake_writers()
        self._flush()

    # -- reading ---------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        self._in_read_batch = True
        ws = self.ws
        try:
            for event in ws.receive_data(data):
                pending = ws.data_to_send()
                if pending:
                    self._push(pending, control=True)
                if type(event) is MessageReceived:
                    self.counters.messages_received += 1
                    self.handler.on_message(self, event.data)
                elif type(event) is Closed:
                    self._finish_closed(event.code)
            pending = ws.data_to_send()
            if pending:
                self._push(pending, control=True)
        finally:
            self._in_read_batch = False

    def _guarded(self, call: Callable[..., None], *args: object) -> None:
        """Run handler code; if it raises, the peer gets 1011 and the connection ends (the server goes on)."""
        try:
            call(*args)
        except Exception:
            log.exception("ws handler failed peer=%s path=%s", self.peer, self.path)
            self._push(self.ws.close(INTERNAL_ERROR, "internal error"), control=True)
            self.ws.abort(INTERNAL_ERROR, "internal error")
            self._finish_closed(INTERNAL_ERROR)

    def _after_input(self) -> None:
        self._flush()
        if self.ws.close_transport:
            self._close_transport()

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

    def send_shared(self, text: str, frame: bytes) -> bool:
        """Queue ``text`` framed once for many receivers as the plain ``frame``.

        The one place that knows which bytes fit this connection: uncompressed, the
        plain frame; in shared compression, the ``SharedFrame``'s compressed frame for
        this window size (deflated once for every such receiver); with a deflate
        context of its own, it encodes ``text`` itself.
        """
        if not self.compressed:
            return self.send_frame(frame)
        bits = self._shared_deflate_bits
        if bits is not None and type(frame) is SharedFrame:
            return self.send_frame(frame.deflated(bits))
        return self.send(text)

    @property
    def backed_up(self) -> bool:
        """The outbox is half full (by messages or bytes) and the transport is still draining it."""
        outbox = self.outbox
        if self.transport.is_closing():
            return False
        return (
            len(outbox) * 2 >= outbox.max_messages
            or outbox.pending_bytes * 2 >= outbox.max_bytes
        )

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; TCP is dropped if the peer does not finish it in time."""
        if self.ws.state is not State.OPEN:
            return
        self._push(self.ws.close(code, reason), control=True)
        self._close_timer = self._loop.call_later(
            self.config.close_timeout_s, self._close_timed_out
        )

    def abort(self, code: int = 1006, reason: str = "") -> None:
        """Drop the connection now, without a closing handshake (shutdown's last resort, broken transports)."""
        self.ws.abort(code, reason)
        self.transport.abort()

    def _push(self, data: bytes, *, control: bool = False) -> bool:
        if not data:
            return True
        if control:
            self.outbox.push_control(data)
        elif not self.outbox.push(data):
            self._slow_consumer()
            return False
        else:
            self.counters.messages_sent += 1
        if not self._in_read_batch and not self._flush_scheduled:
            self._flush_scheduled = True
            self._flusher.add(self)
        return True

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._paused or not self.outbox or self.transport.is_closing():
            return
        data = self.outbox.take()
        self.counters.bytes_sent += len(data)
        self.transport.write(data)  # may call pause_writing() before it returns

    def _wake_writers(self) -> None:
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)

    async def wait_writable(self) -> None:
        """Return once the socket drains again (at once if it is not backed up)."""
        while self._paused and not self.ws.close_transport and not self._lost:
            if self._resumed is None or self._resumed.done():
                self._resumed = self._loop.create_future()
            await asyncio.shield(self._resumed)

    def _slow_consumer(self) -> None:
        """The documented policy: a peer that cannot keep up is closed with 1008 and counted.

        What it has not been sent yet is dropped (it will miss it anyway; a chat
        client catches up with ``since``), so the close frame is next in line and
        the memory is given back now, not when the close timeout ends it.
        """
        self.counters.slow_consumers_closed += 1
        dropped = self.outbox.discard()
        log.warning(
            "ws slow consumer peer=%s path=%s dropped_bytes=%d",
            self.peer,
            self.path,
            dropped,
        )
        self.close(POLICY_VIOLATION, "slow consumer")

    # -- keepalive and timeouts ------------------------------------------------

    @property
    def next_deadline(self) -> float | None:
        """When the sweep next has something to check here: a ping, a pong deadline or the token's expiry."""
        deadline = self.keepalive.next_deadline
        expiry = self._expires_at_loop
        if expiry is not None and (deadline is None or expiry < deadline):
            return expiry
        return deadline

    def sweep(self, now: float) -> None:
        """Called by the loop's sweep once ``next_deadline`` has passed."""
        ws = self.ws
        if ws.state is not State.OPEN:
            self.keepalive.stop()
            self._expires_at_loop = None
            return
        if self._expires_at_loop is not None and now >= self._expires_at_loop:
            self._expires_at_loop = None
            self._token_expired()
            return
        due = self.keepalive.due(now, awaiting_pong=ws.awaiting_pong)
        if due is Due.PING:
            self._push(ws.ping(), control=True)
            self.keepalive.ping_sent(now)
        elif due is Due.PONG_OVERDUE:
            self._keepalive_failed()

    def _keepalive_failed(self) -> None:
        """No pong in time: fail with 1011, the close frame as a courtesy, TCP dropped at once (core/keepalive.py)."""
        log.info("ws keepalive timeout peer=%s path=%s", self.peer, self.path)
        self.keepalive.stop()
        self._push(
            self.ws.close(KEEPALIVE_FAILURE_CODE, KEEPALIVE_FAILURE_REASON),
            control=True,
        )
        self._flush()
        self.ws.abort(KEEPALIVE_FAILURE_CODE, KEEPALIVE_FAILURE_REASON)
        self._finish_closed(KEEPALIVE_FAILURE_CODE)
        self.transport.abort()

    def _token_expired(self) -> None:
        log.info("ws token expired peer=%s path=%s", self.peer, self.path)
        self.close(POLICY_VIOLATION, "token expired")

    def _close_timed_out(self) -> None:
        if self.ws.state is not State.CLOSED:
            self.ws.abort()
        self.transport.abort()

    # -- the end -----------------------------------------------------------------

    def _finish_closed(self, code: int) -> None:
        """Runs once: tell the handler, stop the keepalive timers, log the close line."""
        if self._finished:
            return
        self._finished = True
        self.keepalive.stop()
        self._sweeper.discard(self)
        duration = self._loop.time() - self._opened_at
        self.counters.closed(code)
        fields = {
            "peer": self.peer,
            "path": self.path,
            "code": code,
            "duration_s": round(duration, 3),
            "user": self.user or "-",
        }
        log.info(
            "ws close peer=%(peer)s path=%(path)s code=%(code)d duration=%(duration_s).3fs user=%(user)s",
            fields,
            extra=fields,
        )
        try:
            self.handler.on_close(self, code)
        except Exception:
            log.exception(
                "ws close handler failed peer=%s path=%s", self.peer, self.path
            )

    def _close_transport(self) -> None:
        """The WebSocket is over: write what is pending (it ends with our close frame, if any), close TCP.

        ``transport.close`` sends the FIN once the buffer is out; a peer that
        stops reading cannot hold the socket past the close timeout.
        """
        self._finish_closed(self.ws.close_code or 1006)
        if self.transport.is_closing():
            return
        if self.outbox:
            data = self.outbox.take()
            self.counters.bytes_sent += len(data)
            self.transport.write(data)
        self.transport.close()
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if (
            self.transport.get_write_buffer_size()
        ):  # else the socket is already closing: nothing can hold it
            self._close_timer = self._loop.call_later(
                self.config.close_timeout_s, self.transport.abort
            )

    def _done(self) -> None:
        """The transport is gone: release the timers and whoever waits for the end."""
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        self._stream = None
        if self._on_finished is not None:
            on_finished, self._on_finished = self._on_finished, None
            on_finished(self)
