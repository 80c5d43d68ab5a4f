"""``ServerConnection``: one open WebSocket, the protocol of its transport once the 101 is answered.

It serves both kinds of handler (``rawws.server.endpoint``). For callbacks,
``data_received`` feeds the sans-I/O core and calls ``on_message`` for each
message at once: no task waits on a read, so an idle WebSocket costs a few
objects, and a message is answered in the loop turn it arrived in. For a
coroutine handler, the same bytes go through a bounded ``rawws.aio.inbox.Inbox``
that ``recv()`` and ``async for`` read, and the handler runs as one task.
How frames leave, keepalive and the end are the base class's
(``rawws.server.edge``): ``await send()`` waits while the socket is backed up,
``send_nowait`` never waits (too slow a reader is closed with 1008).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from rawws.aio.closed import closed_error
from rawws.aio.inbox import DEFAULT_MAX_QUEUE, Inbox
from rawws.config import ServerConfig
from rawws.core.closecodes import ABNORMAL_CLOSURE, INTERNAL_ERROR, NORMAL_CLOSURE
from rawws.core.counters import Counters
from rawws.core.deflate import SharedFrame
from rawws.core.events import Closed, MessageReceived, PongReceived
from rawws.core.http import Request
from rawws.core.protocol import WebSocket
from rawws.errors import ConnectionClosed
from rawws.server.edge import ConnectionEdge
from rawws.server.endpoint import (
    ConnectionHandler,
    WebSocketHandler,
    is_callback_handler,
)

log = logging.getLogger("rawws.server")


class ServerConnection(ConnectionEdge):
    """One accepted WebSocket: ``recv``/``send``/``close`` for a coroutine, ``send_nowait`` for callbacks."""

    __slots__ = (
        "handler",
        "request",
        "subprotocol",
        "compressed",
        "_shared_deflate_bits",
        "identity",
        "task",
        "_inbox",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        ws: WebSocket,
        handler: WebSocketHandler | ConnectionHandler,
        config: ServerConfig,
        *,
        request: Request,
        subprotocol: str | None = None,
        compressed: bool = False,
        counters: Counters | None = None,
        identity: object | None = None,
        user: str | None = None,
        expires_at: float | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
        on_finished: Callable[[ServerConnection], None] | None = None,
    ) -> None:
        super().__init__(
            transport,
            ws,
            config,
            path=request.path,
            peer=request.peer,
            user=user,
            expires_at=expires_at,
            counters=counters,
            on_finished=on_finished,  # type: ignore[arg-type]  # called with this very object
        )
        self.handler = handler
        #: The upgrade request: ``path``, ``query``, ``headers``, ``peer`` (behind a trusted proxy, its client).
        self.request = request
        #: The subprotocol chosen in the handshake, or ``None``.
        self.subprotocol = subprotocol
        self.compressed = compressed
        self._shared_deflate_bits = ws.shared_deflate_bits if compressed else None
        #: Whatever the endpoint's authenticator returned, opaque here (``None`` without one).
        self.identity = identity
        #: The task running a coroutine handler (``None`` for callbacks).
        self.task: asyncio.Task[None] | None = None
        self._inbox = (
            None
            if is_callback_handler(handler)
            else Inbox(ws, transport, self, max_queue=max_queue, counters=self.counters)
        )

    @property
    def remote_address(self) -> Any:
        """The socket's peer address, as the transport gives it (``(host, port)`` for TCP)."""
        return self.transport.get_extra_info("peername")

    # -- taking over the transport ---------------------------------------------

    def start(
        self, initial_data: bytes = b"", *, eof: bool = False, response: bytes = b""
    ) -> None:
        """Become the transport's protocol, start the handler, process what came with the request.

        ``eof``: the peer had already closed its side before the hand-off. ``response``:
        the 101's bytes, written with the first frames (one ``send`` for the 101 and a
        welcome queued by ``on_open``, not two).
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
            self._finish_closed(ABNORMAL_CLOSURE)
            self._done()
            return
        if response:
            self.outbox.push_control(response)
        if self._inbox is None:
            # What on_open queues leaves below, not in a flush scheduled for later.
            self._in_read_batch = True
            try:
                self._guarded(self.handler.on_open, self)  # type: ignore[union-attr]  # callbacks: no inbox
            finally:
                self._in_read_batch = False
        else:
            self.task = self._loop.create_task(self._run(self.handler))  # type: ignore[arg-type]  # a coroutine function: it has an inbox
        if initial_data:
            self.data_received(initial_data)
        if eof:
            self.eof_received()
        self._after_input()
        inbox = self._inbox
        reading = not (
            self._paused
            or self._throttled
            or (inbox is not None and inbox.reading_paused)
        )
        if reading and not self.transport.is_closing():
            self.transport.resume_reading()  # the HTTP reader may have paused it

    async def _run(self, handler: ConnectionHandler) -> None:
        """A coroutine handler's task: the connection is closed when it returns (1011 if it raised)."""
        code, reason = NORMAL_CLOSURE, ""
        try:
            await handler(self)
        except ConnectionClosed:
            pass  # the connection ended under the handler: nothing to report
        except asyncio.CancelledError:
            self.abort()
            raise
        except Exception:
            log.exception("ws handler failed peer=%s path=%s", self.peer, self.path)
            code, reason = INTERNAL_ERROR, "internal error"
        await self.close(code, reason)

    # -- the coroutine API -----------------------------------------------------

    def recv(self) -> Coroutine[Any, Any, str | bytes]:
        """The next message (``str`` or ``bytes``); once none is left and the connection is over,
        ``ConnectionClosedOK`` (1000, 1001, 1005) or ``ConnectionClosedError`` (anything else)."""
        return self._receiving().get()

    def __aiter__(self) -> ServerConnection:
        return self

    def __anext__(self) -> Coroutine[Any, Any, str | bytes]:
        """``async for``: messages until a normal close; another close raises ``ConnectionClosedError``."""
        return self._receiving().get(iterating=True)

    def _receiving(self) -> Inbox:
        inbox = self._inbox
        if inbox is None:
            raise RuntimeError(
                "this endpoint has a callback handler: messages go to its on_message"
            )
        if self._flush_scheduled and not inbox.messages:
            # The handler is done with what it had and is about to wait: its replies
            # leave now, in the write the flusher would make a loop turn later.
            self._flush()
        return inbox

    async def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send one message (``str`` as text, bytes-like as binary); waits while the socket is backed up.

        Raises ``ConnectionClosed`` once the connection is closing or over.
        """
        if type(message) is not str and type(message) is not bytes:
            if isinstance(message, (bytearray, memoryview)):
                message = bytes(message)
            elif not isinstance(message, (str, bytes)):
                raise TypeError(
                    f"a message is str or bytes, not {type(message).__name__}"
                )
        if self.outbox.overflowed or self._lost:
            raise self._closed_error()
        try:
            frame = self.ws.send(message)  # refused once the connection is closing
        except ConnectionClosed:
            raise self._closed_error() from None
        if not self._push(frame):
            raise self._closed_error()  # too slow: it is being closed with 1008
        if self.outbox.pending_bytes >= self._high_water:
            # A handler sending in a loop does not yield: write now rather than at the
            # end of the turn, so the transport can say it is full before the outbox is.
            self._flush()
        if self._paused:
            await self.wait_writable()

    def _closed_error(self) -> ConnectionClosed:
        code = self.close_code
        if code is None:
            code = self.ws.close_code or ABNORMAL_CLOSURE
        return closed_error(code, self.close_reason or self.ws.close_reason)

    # -- asyncio.Protocol ------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Process everything one read brought, then write all replies at once."""
        if self.ws.close_transport:
            return
        self.counters.bytes_received += len(data)
        budget = self.ws.read_budget
        if budget is not None:
            budget.refill(self._loop.time())
        if self._inbox is not None:
            self._inbox.feed(data)  # its run ends in _inbox_done
            return
        self._guarded(self._feed, data)
        self._after_input()

    def eof_received(self) -> bool:
        if self._inbox is not None:
            if not self.ws.close_transport:
                self._inbox.feed_eof()
            # The handler may still be replying to what came before the EOF: TCP stays open
            # for writing, and _close_transport closes it once the inbox holds nothing back.
            # (TLS has no half-close: there the transport closes itself.)
            tls = self.transport.get_extra_info("sslcontext") is not None
            return not tls and not self.transport.is_closing()
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
        if self._inbox is not None:
            self._inbox.drain()  # what is held or unparsed: the handler reads it, then the end
        self.ws.abort()
        self._finish_closed(self.ws.close_code or ABNORMAL_CLOSURE)
        self._wake_writers()
        self._done()

    def _hold_reading(self, hold: bool) -> None:
        inbox = self._inbox
        if inbox is None:
            super()._hold_reading(hold)
        else:
            inbox.hold_reading = hold
            inbox.update_reading()

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
                    self.handler.on_message(self, event.data)  # type: ignore[union-attr]  # callbacks: no inbox
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

    def _input_resumed(self) -> None:
        # (No EOF can have come meanwhile: the transport was not read, so it follows these bytes.)
        self.data_received(b"")

    def _after_input(self) -> None:
        """Write what the input produced; close TCP once the core is done (and the inbox holds no reply back)."""
        self._pace_input()
        self._flush()
        inbox = self._inbox
        if self.ws.close_transport and not (inbox is not None and inbox.holding):
            self._close_transport()

    # What the inbox hands back (``rawws.aio.inbox.InboxOwner``).

    def _inbox_output(self, data: bytes) -> None:
        self.outbox.push_control(
            data
        )  # after what the handler sent; flushed in _inbox_done

    def _inbox_event(self, event: PongReceived | Closed) -> None:
        if type(event) is Closed:
            self._finish_closed(event.code)

    def _inbox_done(self) -> None:
        self._after_input()

    # -- sending without waiting (callbacks, fan-out) --------------------------

    def send_nowait(self, message: str | bytes) -> bool:
        """Queue one message; ``False`` when the connection is closing or was too slow."""
        if not self.open:
            return False
        return self._push(self.ws.send(message))

    def send_frame(self, frame: bytes) -> bool:
        """Queue frame bytes encoded elsewhere (the same bytes for many receivers)."""
        if not self.open:
            return False
        return self._push(frame)

    def send_shared(self, message: str | bytes, frame: bytes) -> bool:
        """Queue ``message`` framed once for many receivers as the plain ``frame``.

        The one place that knows which bytes fit this connection: uncompressed, the
        plain frame; in shared compression, the ``SharedFrame``'s compressed frame for
        this window size (deflated once for every such receiver); with a deflate
        context of its own, it encodes ``message`` itself.
        """
        if not self.compressed:
            return self.send_frame(frame)
        bits = self._shared_deflate_bits
        if bits is not None and type(frame) is SharedFrame:
            return self.send_frame(frame.deflated(bits))
        return self.send_nowait(message)

    # -- the end -------------------------------------------------------------------

    def _start_closing(self, code: int, reason: str) -> None:
        super()._start_closing(code, reason)
        if self._inbox is not None:
            self._inbox.drain()  # no replies after our close: what the inbox holds goes now

    def _done(self) -> None:
        """The transport is gone: after the base class's release, the inbox lets go of this connection.

        (It holds us and we hold it: left linked, every closed connection would wait
        for the collector's full pass, ``Inbox.detach``.)
        """
        super()._done()
        if self._inbox is not None:
            self._inbox.detach()

    def _finish_closed(self, code: int) -> None:
        """Runs once: recorded and logged (``ConnectionEdge``), then the handler is told."""
        if self._finished:
            return
        super()._finish_closed(code)
        if self._inbox is not None:
            self._inbox.end(code, self.close_reason or "")
            return
        try:
            self.handler.on_close(self, code)  # type: ignore[union-attr]  # callbacks: no inbox
        except Exception:
            log.exception(
                "ws close handler failed peer=%s path=%s", self.peer, self.path
            )
