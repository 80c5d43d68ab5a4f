"""``Inbox``: the messages a WebSocket received that the application has not read yet, for both ends.

``ServerConnection.recv`` and ``ClientConnection.recv`` (and ``async for``) read
from one. It sits between the asyncio protocol, which feeds it what the socket
gave, and the sans-I/O core, which it asks for events (websockets keeps the
same place for its ``Assembler``, ``asyncio/messages.py``). Three rules:

* **Bounded, with backpressure.** At most ``max_queue`` messages wait. With the
  queue full, parsing stops where it is and the transport is not read; bytes
  read meanwhile wait unparsed (at most ``BACKLOG_MAX_BYTES``, then reading
  pauses as well). Reading resumes once the reader has taken half the queue,
  so a reader that keeps up does not pause and resume per message.
* **Parsed ahead.** Every message in what one read brought is queued at once
  and a waiting reader is woken once, so a task that handles a batch per
  wake-up pays one wake-up, not one per message.
* **Replies in order.** What the core has to write while parsing (a pong, the
  answer to a close, the close that fails the connection) and the end of the
  connection wait, and parsing stops, until the reader has taken the messages
  that came before them and run on: its replies to those messages go out
  first, as if each frame had been read on its own (a message echoed before
  the close frame that followed it on the wire). The core lets messages be
  sent while its close answer waits (``WebSocket.can_send``; RFC 6455 §5.5.1).

The owner (the connection) writes what the core produced, handles pongs and
the close, and closes TCP: ``InboxOwner``.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator
from typing import Protocol

from rawws.aio.closed import closed_error
from rawws.core.counters import Counters
from rawws.core.events import Closed, Event, MessageReceived, PongReceived
from rawws.core.protocol import State, WebSocket
from rawws.errors import ConnectionClosedOK

KiB = 1024
_OPEN = State.OPEN  # compared for every event
DEFAULT_MAX_QUEUE = (
    16  # received messages waiting for recv(); then the socket is not read
)
BACKLOG_MAX_BYTES = (
    64 * KiB
)  # read, not parsed yet while the reader catches up; then stop reading


class InboxOwner(Protocol):
    """The connection an ``Inbox`` works for."""

    def _inbox_output(self, data: bytes) -> None:
        """Write what the core produced while parsing (pongs, close frames), after what was sent before."""

    def _inbox_event(self, event: PongReceived | Closed) -> None:
        """A pong arrived, or the WebSocket is over (the owner then calls ``Inbox.end``)."""

    def _inbox_done(self) -> None:
        """A parsing run is over: flush; close TCP if the core says so and nothing is ``holding``."""


class _Detached:
    """The owner once its transport is gone: what a late parsing run hands back has nowhere to go."""

    __slots__ = ()

    def _inbox_output(self, data: bytes) -> None:
        pass

    def _inbox_event(self, event: PongReceived | Closed) -> None:
        pass

    def _inbox_done(self) -> None:
        pass


_DETACHED = _Detached()


class Inbox:
    """Received messages waiting for ``get``; bytes not parsed yet; what waits for the reader to reply."""

    __slots__ = (
        "ws",
        "transport",
        "owner",
        "counters",
        "max_queue",
        "_resume_at",
        "_loop",
        "messages",
        "_reader",
        "_events",
        "_backlog",
        "_backlog_bytes",
        "_eof",
        "_eof_fed",
        "holding",
        "_held",
        "_ahead",
        "_scheduled",
        "reading_paused",
        "hold_reading",
        "draining",
        "_ended",
    )

    def __init__(
        self,
        ws: WebSocket,
        transport: asyncio.Transport,
        owner: InboxOwner,
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        counters: Counters | None = None,
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.ws = ws
        self.transport = transport
        self.owner = owner
        self.counters = counters
        self.max_queue = max_queue
        self._resume_at = max_queue // 2  # hysteresis: no pause and resume per message
        self._loop = asyncio.get_running_loop()
        #: The messages waiting for ``get``, oldest first.
        self.messages: collections.deque[str | bytes] = collections.deque()
        self._reader: asyncio.Future[None] | None = None
        self._events: Iterator[Event] | None = None  # the core's events, not all taken
        self._backlog: list[bytes] = []
        self._backlog_bytes = 0
        self._eof = False
        self._eof_fed = False
        #: Output and an event wait until the reader has taken ``_ahead`` more messages and run on.
        self.holding = False
        self._held: Event | None = None
        self._ahead = 0
        self._scheduled = False
        self.reading_paused = False
        #: The owner's own reason to stop reading (its writes are backed up).
        self.hold_reading = False
        #: Nobody will reply any more (TCP is gone, or the application stopped reading):
        #: nothing is held, the queue has no bound, everything left is parsed.
        self.draining = False
        self._ended: tuple[int, str] | None = None

    def __len__(self) -> int:
        return len(self.messages)

    @property
    def work_pending(self) -> bool:
        """Bytes, events, an EOF or a held reply wait: the reader is behind."""
        return (
            self._events is not None
            or bool(self._backlog)
            or (self._eof and not self._eof_fed)
            or self.holding
        )

    # -- bytes in --------------------------------------------------------------------

    @property
    def _full(self) -> bool:
        """No more messages may be parsed until the reader takes some (once closing, none are queued)."""
        return (
            not self.draining
            and len(self.messages) >= self.max_queue
            and self.ws.state is _OPEN
        )

    def feed(self, data: bytes) -> None:
        """What one read brought."""
        if self._events is not None or self._backlog or self.holding or self._full:
            self._backlog.append(data)  # behind what is not parsed yet: keep the order
            self._backlog_bytes += len(data)
            self.update_reading()
            return
        self._events = self.ws.receive_data(data)
        self.run()

    def feed_later(self, data: bytes) -> None:
        """Bytes that came with the handshake: parsed on the next turn, once the application holds the connection."""
        self._backlog.append(data)
        self._backlog_bytes += len(data)
        self.schedule()

    def feed_eof(self) -> None:
        self._eof = True
        if not (self._events is not None or self._backlog or self.holding):
            self.run()

    def drain(self) -> None:
        """Nobody will reply any more: release what is held and parse everything left, unbounded."""
        self.draining = True
        if self.work_pending:
            self.run()

    def detach(self) -> None:
        """The owner's transport is gone and what it read is parsed (``drain``): let go of the owner.

        The owner holds the inbox and the inbox holds the owner: without this,
        every closed connection is a reference cycle (the connection, its core,
        its inbox and task: some thirty objects) that only the collector's full
        pass frees. 10,000 connections closed together then cost that pass
        ~0.5 s, paid by whichever connection happens to trigger it. Detached,
        a closed connection is freed as soon as the last outside reference
        (the handler's task, a ``set`` of the application's) lets it go.
        Messages still queued stay readable; a reply produced from here on
        is dropped, as the transport could not carry it anyway.
        """
        self.owner = _DETACHED

    def end(self, code: int, reason: str = "") -> None:
        """The WebSocket is over: once the queue is empty, ``get`` raises the error for ``code``."""
        if self._ended is None:
            self._ended = (code, reason)
        self._wake()

    # -- messages out ------------------------------------------------------------------

    async def get(self, iterating: bool = False) -> str | bytes:
        """The next message; ``ConnectionClosedOK``/``ConnectionClosedError`` once none is left and it is over.

        ``iterating``: a normal close ends an ``async for`` (``StopAsyncIteration``) instead.
        """
        messages = self.messages
        while not messages:
            if self._ended is not None:
                error = closed_error(*self._ended)
                if iterating and isinstance(error, ConnectionClosedOK):
                    raise StopAsyncIteration
                try:
                    raise error
                finally:
                    # The error's traceback holds this frame: were the frame to keep the error,
                    # the pair (and the connection its handler's frame holds) would be a cycle.
                    del error
            if self._reader is not None:
                raise RuntimeError("recv() is already waiting in another task")
            self._reader = reader = self._loop.create_future()
            try:
                await reader
            finally:
                self._reader = None
        message = messages.popleft()
        if self._ahead:
            self._ahead -= 1
            if not self._ahead:
                self.schedule()  # after this task's step: its replies are queued by then
        elif len(messages) <= self._resume_at and (
            self.reading_paused or self._events is not None or self._backlog
        ):
            self.schedule()
        return message

    def _wake(self) -> None:
        reader = self._reader
        if reader is not None and not reader.done():
            reader.set_result(None)

    # -- parsing -----------------------------------------------------------------------

    def schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run_scheduled)

    def _run_scheduled(self) -> None:
        if self._scheduled:
            self.run()

    def run(self) -> None:
        """Take the core's events until they are done, the queue is full, or something must wait for the reader."""
        self._scheduled = False
        ws = self.ws
        messages = self.messages
        queued_before = len(messages)
        limited = not self.draining
        max_queue = self.max_queue
        output: list[bytes] = []
        try:
            if self.holding:
                if self._ahead and limited:
                    return  # the reader has not taken them yet
                self._release(output)
            while True:
                # Backpressure: with the queue full, nothing more is parsed (the reader
                # resumes us), unless what is under way is known to yield no more.
                full = limited and len(messages) >= max_queue and ws.state is _OPEN
                events = self._events
                if events is None:
                    if full:
                        break
                    events = self._next_events(ws)
                    if events is None:
                        break
                elif full and ws.input_pending:
                    break
                event = next(events, None)
                if event is None:
                    self._events = None
                    if not ws.output_pending:
                        continue
                elif type(event) is MessageReceived:
                    if not ws.output_pending:
                        messages.append(event.data)  # counted once the run is over
                        continue
                elif type(event) is PongReceived and not ws.output_pending:
                    self.owner._inbox_event(event)
                    continue
                if messages and limited:
                    # A reply, or the end: after the reader's replies to the messages before it.
                    self.holding, self._held, self._ahead = True, event, len(messages)
                    break
                self._handle(event, output)
        finally:
            if self.counters is not None:
                # Every message is queued here, in this run (get() takes none meanwhile).
                self.counters.messages_received += len(messages) - queued_before
            if output:
                self.owner._inbox_output(
                    output[0] if len(output) == 1 else b"".join(output)
                )
        if messages:
            self._wake()
        self.update_reading()
        self.owner._inbox_done()

    def _next_events(self, ws: WebSocket) -> Iterator[Event] | None:
        """Start on the next bytes (or the EOF) waiting to be parsed, if any."""
        backlog = self._backlog
        if backlog:
            data = backlog[0] if len(backlog) == 1 else b"".join(backlog)
            backlog.clear()
            self._backlog_bytes = 0
            self._events = ws.receive_data(data)
        elif self._eof and not self._eof_fed:
            self._eof_fed = True
            self._events = ws.receive_eof()
        return self._events

    def _handle(self, event: Event | None, output: list[bytes]) -> None:
        pending = self.ws.data_to_send()
        if pending:
            output.append(pending)
        if event is None:
            return
        if type(event) is MessageReceived:
            self.messages.append(event.data)  # counted at the end of the run
        else:
            self.owner._inbox_event(event)  # type: ignore[arg-type]  # a pong or a close: the message case is above

    def _release(self, output: list[bytes]) -> None:
        event, self._held = self._held, None
        self.holding, self._ahead = False, 0
        self._handle(event, output)

    def update_reading(self) -> None:
        """Read the socket only while the queue, the unparsed bytes and the owner allow it."""
        if not (
            self.reading_paused
            or self.hold_reading
            or self._events is not None
            or self._backlog
        ):
            return  # reading, and nothing waits unparsed: no reason to stop (after every read)
        transport = self.transport
        if transport.is_closing():
            return
        # Once closing, messages are dropped (unless asked for): only the unparsed bytes count.
        counted = self.ws.state is State.OPEN and not self.draining
        queued = len(self.messages)
        backlog_full = self._backlog_bytes > BACKLOG_MAX_BYTES
        # A full queue stops reading only once parsing stopped for it: a read that
        # fills it exactly (a client's whole window) pauses nothing.
        stalled = self._events is not None or bool(self._backlog)
        if not self.reading_paused:
            if (
                backlog_full
                or self.hold_reading
                or (counted and stalled and queued >= self.max_queue)
            ):
                self.reading_paused = True
                transport.pause_reading()
        elif (
            not backlog_full
            and not self.hold_reading
            and (not counted or queued <= self._resume_at)
        ):
            self.reading_paused = False
            transport.resume_reading()
