"""``ConnectionEdge``: the write side and the lifetime of one WebSocket on the server.

Whatever handles the connection (``rawws.server.connection``), this is how its
bytes leave and how it ends:

* **Coalesced writes.** Frames queue in a bounded ``Outbox``; what one read
  produced leaves in one ``transport.write`` at the end of that read, and what
  is pushed from outside a read (a fan-out, a coroutine's ``send``, a
  keepalive ping) is flushed once per loop turn for every connection
  together (``rawws.server.flusher``).
* **Backpressure.** Past the transport's high-water mark frames wait in the
  outbox and the peer is not read; a push that does not fit applies the
  slow-consumer policy (close 1008, counted) instead of growing memory.
* **Input paid before it is processed.** Each connection's core draws every
  frame and every slice of inflated payload from a ``ReadBudget``
  (``rawws.core.budget``; ``inflate_bytes_per_s``, ``read_frames_per_s``). Once it
  is overdrawn the core parses nothing more and the socket is not read; a timer
  refills it and parsing goes on where it stopped. A fast peer is slowed down
  by TCP's flow control, never closed for its rate.
* **Keepalive and expiry.** One sweep per loop (``rawws.server.sweep``) asks
  each connection what is due: a ping, an overdue pong (1011, TCP dropped), a
  credential that expired (1008), a message whose fragments took longer than
  ``message_timeout_s`` from the first (1008: what it holds is let go).
* **The end.** Our close frame arms the close timeout (then TCP is dropped);
  the end is recorded once (``close_code``), logged, counted, and whoever
  waits for it is woken.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from rawws.config import ServerConfig
from rawws.core.budget import ReadBudget
from rawws.core.closecodes import ABNORMAL_CLOSURE, NORMAL_CLOSURE, POLICY_VIOLATION
from rawws.core.counters import Counters
from rawws.core.keepalive import (
    KEEPALIVE_FAILURE_CODE,
    KEEPALIVE_FAILURE_REASON,
    Due,
    Keepalive,
)
from rawws.core.outbox import Outbox
from rawws.core.protocol import State, WebSocket
from rawws.server.flusher import flusher_for
from rawws.server.sweep import sweep_period, sweeper_for

log = logging.getLogger("rawws.server")


class ConnectionEdge(asyncio.Protocol):
    """How one accepted WebSocket writes, keeps alive and ends; ``ServerConnection`` reads and serves it."""

    # Slots, not a __dict__: this object exists once per open connection.
    __slots__ = (
        "transport",
        "ws",
        "config",
        "path",
        "peer",
        "user",
        "expires_at",
        "counters",
        "outbox",
        "_high_water",
        "close_code",
        "close_reason",
        "keepalive",
        "_loop",
        "_flusher",
        "_on_finished",
        "_in_read_batch",
        "_flush_scheduled",
        "_paused",
        "_resumed",
        "_closed",
        "_sweeper",
        "_expires_at_loop",
        "_close_timer",
        "_opened_at",
        "_finished",
        "_lost",
        "_throttled",
        "_resume_handle",
        "_message_deadline",
        "__weakref__",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        ws: WebSocket,
        config: ServerConfig,
        *,
        path: str,
        peer: str,
        user: str | None = None,
        expires_at: float | None = None,
        counters: Counters | None = None,
        on_finished: Callable[[ConnectionEdge], None] | None = None,
    ) -> None:
        self.transport = transport
        self.ws = ws
        self.config = config
        self.path = path
        self.peer = peer
        #: Who the credential says this is, for the chat and the log lines.
        self.user = user
        #: When the credential expires (epoch seconds): the connection is closed with 1008 then.
        self.expires_at = expires_at
        self.counters = counters if counters is not None else Counters()
        self.outbox = Outbox(config.outbox_max_bytes, config.outbox_max_messages)
        self._high_water = config.write_high_water_bytes
        #: How the connection ended, once it has (``None`` until then; 1006: no close frame).
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._loop = asyncio.get_running_loop()
        self._flusher = flusher_for(self._loop)
        self._on_finished = on_finished
        self._in_read_batch = False
        self._flush_scheduled = False
        self._paused = False
        self._resumed: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] | None = None
        self._opened_at = now = self._loop.time()
        #: Pings and pong deadlines, decided in the core; checked by one sweep per loop (``rawws.server.sweep``).
        self.keepalive = Keepalive(config.ping_interval_s, config.ping_timeout_s, now)
        self._sweeper = sweeper_for(
            self._loop,
            sweep_period(
                config.ping_interval_s, config.ping_timeout_s, config.message_timeout_s
            ),
        )
        ws.read_budget = ReadBudget(
            config.read_frames_per_s, float(config.inflate_bytes_per_s), now
        )
        #: The budget is overdrawn: the socket is not read until ``_resume_input``.
        self._throttled = False
        self._resume_handle: asyncio.TimerHandle | None = None
        #: When the message under way must be whole (loop time), or ``None``.
        self._message_deadline: float | None = None
        # The credential's expiry on the loop's clock (the sweep compares loop times).
        self._expires_at_loop = (
            None if expires_at is None else now + max(0.0, expires_at - time.time())
        )
        self._close_timer: asyncio.TimerHandle | None = None
        self._finished = False
        self._lost = False

    # -- backpressure ------------------------------------------------------------

    def pause_writing(self) -> None:
        """The socket stopped draining: hold frames in the outbox, and stop reading this peer."""
        self._paused = True
        self._hold_reading(True)

    def resume_writing(self) -> None:
        self._paused = False
        self._hold_reading(self._throttled)
        self._wake_writers()
        self._flush()

    def _hold_reading(self, hold: bool) -> None:
        if self.transport.is_closing():
            return
        if hold:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    # -- what input may cost ---------------------------------------------------------

    def _pace_input(self) -> None:
        """After a run of parsing: start the message's clock, or stop reading while the budget refills."""
        ws = self.ws
        if ws.assembling and ws.state is State.OPEN:
            if self._message_deadline is None and self.config.message_timeout_s > 0:
                self._message_deadline = (
                    self._loop.time() + self.config.message_timeout_s
                )
                self._sweeper.add(self)
        else:
            self._message_deadline = None
        if ws.throttled and not self._throttled and not ws.close_transport:
            budget = ws.read_budget
            assert budget is not None
            self._throttled = True
            self._hold_reading(True)
            self._resume_handle = self._loop.call_later(
                budget.ready_in(self._loop.time()), self._resume_input
            )

    def _resume_input(self) -> None:
        """The budget has refilled: read again, and parse what waited (``_input_resumed``)."""
        self._resume_handle = None
        self._throttled = False
        if self._lost or self.ws.close_transport:
            return
        self._hold_reading(self._paused)
        self._input_resumed()

    def _input_resumed(self) -> None:
        """Parse the bytes that waited for the budget (the subclass knows how it parses)."""

    # -- sending -------------------------------------------------------------------

    @property
    def open(self) -> bool:
        """Open, and not closed for being too slow: sending makes sense."""
        # can_send: also while the peer's close waits for our replies to what came before it.
        return self.ws.can_send and not self.outbox.overflowed

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

    async def wait_writable(self) -> None:
        """Return once the socket drains again (at once if it is not backed up)."""
        while self._paused and not self.ws.close_transport and not self._lost:
            if self._resumed is None or self._resumed.done():
                self._resumed = self._loop.create_future()
            await asyncio.shield(self._resumed)

    def abort(self, code: int = ABNORMAL_CLOSURE, reason: str = "") -> None:
        """Drop the connection now, without a closing handshake (shutdown's last resort, broken transports)."""
        self.ws.abort(code, reason)
        self.transport.abort()

    def _start_closing(self, code: int, reason: str) -> None:
        """Our close frame; TCP is dropped if the peer does not finish the handshake in time."""
        if self.ws.state is State.OPEN:
            self._push(self.ws.close(code, reason), control=True)
            self._close_timer = self._loop.call_later(
                self.config.close_timeout_s, self._close_timed_out
            )

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
        """Write the outbox, a high-water mark at a time, until it is empty or the transport is full.

        The rest stays in the outbox as references to the queued frames (shared
        with every other receiver of a broadcast), not as a copy in the transport.
        """
        self._flush_scheduled = False
        outbox, transport = self.outbox, self.transport
        if self._paused or not outbox or transport.is_closing():
            return
        while True:  # once, unless more than a high-water mark is queued
            data = outbox.take(self._high_water)
            self.counters.bytes_sent += len(data)
            transport.write(data)  # may call pause_writing() before it returns
            if not outbox.pending_bytes or self._paused or transport.is_closing():
                return

    def _wake_writers(self) -> None:
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)

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
        self._start_closing(POLICY_VIOLATION, "slow consumer")

    # -- closing -------------------------------------------------------------------

    def close(
        self, code: int = NORMAL_CLOSURE, reason: str = ""
    ) -> asyncio.Future[None]:
        """Start the closing handshake at once (a callback may call it too, without awaiting).

        The future is done once the connection is closed: ``await connection.close()``
        waits for the peer's answer and TCP's end, at most the close timeout (then
        TCP is dropped).
        """
        self._start_closing(code, reason)
        if self._closed is None:
            self._closed = self._loop.create_future()
            if self._lost:
                self._closed.set_result(None)
        return asyncio.shield(self._closed)

    async def wait_closed(self) -> None:
        """Return once the connection is over and its transport is gone."""
        if self._lost:
            return
        if self._closed is None:
            self._closed = self._loop.create_future()
        await asyncio.shield(self._closed)

    # -- keepalive and timeouts ------------------------------------------------

    @property
    def next_deadline(self) -> float | None:
        """When the sweep next has something to check here: a ping, a pong deadline or the token's expiry."""
        deadline = self.keepalive.next_deadline
        for other in (self._expires_at_loop, self._message_deadline):
            if other is not None and (deadline is None or other < deadline):
                deadline = other
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
            log.info("ws token expired peer=%s path=%s", self.peer, self.path)
            self._start_closing(POLICY_VIOLATION, "token expired")
            return
        if self._message_deadline is not None and now >= self._message_deadline:
            self._message_deadline = None
            log.info(
                "ws message timeout peer=%s path=%s held_bytes=%d",
                self.peer,
                self.path,
                ws.held_bytes,
            )
            self.counters.messages_timed_out += 1
            self._start_closing(POLICY_VIOLATION, "message timeout")
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

    def _close_timed_out(self) -> None:
        if self.ws.state is not State.CLOSED:
            self.ws.abort()
        self.transport.abort()

    # -- the end -----------------------------------------------------------------

    def _finish_closed(self, code: int) -> None:
        """Runs once: record the end, stop the keepalive, log the close line (the subclass tells the handler)."""
        if self._finished:
            return
        self._finished = True
        self.close_code, self.close_reason = code, self.ws.close_reason
        self._message_deadline = None
        if self._resume_handle is not None:
            self._resume_handle.cancel()
            self._resume_handle = None
        self.keepalive.stop()
        self._sweeper.discard(self)
        self.counters.closed(code)
        if not log.isEnabledFor(logging.INFO):
            return  # the close line is filtered out: its fields are not built for nothing
        duration = self._loop.time() - self._opened_at
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

    def _close_transport(self) -> None:
        """The WebSocket is over: write what is pending (it ends with our close frame, if any), close TCP.

        ``transport.close`` sends the FIN once the buffer is out; a peer that
        stops reading cannot hold the socket past the close timeout.
        """
        self._finish_closed(self.ws.close_code or ABNORMAL_CLOSURE)
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
        if self._on_finished is not None:
            on_finished, self._on_finished = self._on_finished, None
            on_finished(self)
