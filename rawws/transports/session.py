"""One chat member reached over Server-Sent Events or long-polling: the ``Peer`` the chat sees.

The chat queues text on a peer and asks whether it can take more
(``rawws.chat.peer``); a ``Session`` answers as a WebSocket connection does,
with the same bounds. What it was sent waits in one bounded queue, each event
with its sequence number and the session's position after it:

* over **SSE** an event is written at once while the socket takes it (the
  ``data:`` line of a fanned-out message is built once for every session,
  ``sse_data``), and queued behind a slow reader, who is closed as a WebSocket
  would be (``closed 1008 slow consumer``) once the queue is over its bounds;
* over **long-polling** an event stays queued until a poll acknowledges it
  (``ack``), so an answer that was lost comes again; a client that stops
  polling fills the queue the same way.

The position is taken when an event is queued, not when it is written: an
event written later never claims a message that is still behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable

from rawws.accounts.tokens import Identity
from rawws.core.counters import Counters
from rawws.server.streamed import ResponseStream
from rawws.transports.position import format_position

#: Seconds between comments on an idle event stream: under every common proxy's read timeout.
HEARTBEAT_S = 15.0
SSE = "sse"
POLL = "poll"
_HEARTBEAT = b": heartbeat\n\n"
_RETRY = b"retry: 2000\n\n"  # the browser's reconnect delay, milliseconds


class SseData:
    """``data: <text>`` for the last text asked: a message fanned out to many sessions is encoded
    once (the chat hands each the same ``str``; identity, not equality, is what is checked)."""

    __slots__ = ("_text", "_line")

    def __init__(self) -> None:
        self._text: str | None = None
        self._line = b""

    def __call__(self, text: str) -> bytes:
        if text is not self._text:
            # The chat's texts are JSON: a line break inside one is escaped, so one line holds it.
            self._line = b"data: " + text.encode("utf-8") + b"\n"
            self._text = text
        return self._line


sse_data = SseData()


class Positions:
    """A session's position as text and as its ``id:`` line. A position of one room is the
    same for every member of that room a message is fanned out to: it is built once per
    message (the last one asked is kept), not once per session."""

    __slots__ = ("_room", "_id", "_text", "_line")

    def __init__(self) -> None:
        self._room = ""
        self._id = -1
        self._text = ""
        self._line = b""

    def __call__(self, last_ids: dict[str, int]) -> tuple[str, bytes]:
        if len(last_ids) == 1:
            for room, last_id in last_ids.items():
                if last_id != self._id or room != self._room:
                    self._room, self._id = room, last_id
                    self._text = f"{room}:{last_id}"
                    self._line = f"id: {self._text}\n\n".encode()
                return self._text, self._line
        text = format_position(last_ids)
        return text, f"id: {text}\n\n".encode()


positions = Positions()


class Session:
    """One member over SSE or long-polling (``transport``), until ``close``; see the module."""

    __slots__ = (
        "id",
        "transport",
        "_identity",
        "last_ids",
        "_queue",
        "_queued_bytes",
        "_seq",
        "_open",
        "_max_bytes",
        "_max_messages",
        "_high_water",
        "_counters",
        "_on_closed",
        "stream",
        "_wake",
        "_roomy",
        "_waiter",
        "last_poll",
        "_delivered",
        "_loop",
        "_batch",
        "_batch_bytes",
        "_batch_due",
    )

    def __init__(
        self,
        session_id: str,
        transport: str,
        identity: Identity,
        *,
        max_bytes: int,
        max_messages: int,
        high_water: int,
        counters: Counters,
        on_closed: Callable[[Session, int], None],
    ) -> None:
        self.id = session_id
        self.transport = transport
        self._identity = identity
        #: Room → the last message id sent: the chat member's own dict once it is open (``attach``).
        self.last_ids: dict[str, int] = {}
        self._queue: deque[tuple[int, str, str]] = deque()  # (seq, text, position)
        self._queued_bytes = 0
        self._seq = 0
        self._open = True
        self._max_bytes = max_bytes
        self._max_messages = max_messages
        self._high_water = high_water
        self._counters = counters
        self._on_closed = on_closed
        self.stream: ResponseStream | None = None  # SSE: the open response
        self._wake = asyncio.Event()  # something was queued (or the session closed)
        self._roomy = asyncio.Event()  # the queue is under half its bounds
        self._roomy.set()
        self._waiter: asyncio.Future[None] | None = None  # the poll waiting, if any
        self.last_poll = time.monotonic()
        #: The position after the last event written (SSE) or acknowledged (a poll).
        self._delivered = ""
        self._loop = asyncio.get_running_loop()
        # SSE: what this loop turn sent, written as one piece once it ends (as a WebSocket's
        # outbox is flushed once per turn): a burst costs one write per session, not one per event.
        self._batch: list[bytes] = []
        self._batch_bytes = 0
        self._batch_due = False

    # -- Peer ------------------------------------------------------------------------

    @property
    def user(self) -> str:
        return self._identity.user

    @property
    def identity(self) -> Identity:
        return self._identity

    @property
    def open(self) -> bool:
        return self._open

    @property
    def backed_up(self) -> bool:
        return not self._roomy.is_set()

    async def wait_writable(self) -> None:
        await self._roomy.wait()

    def send_nowait(self, message: str) -> bool:
        return self._push(message)

    def send_shared(self, text: str, frame: bytes) -> bool:
        return self._push(text)  # the frame is a WebSocket's; SSE shares ``sse_data``

    def close(self, code: int, reason: str) -> None:
        """End the session: ``closed {code, reason}`` is its last event; the chat forgets it.

        What was still queued is dropped (a slow reader would never get to the end of it):
        ``closed`` carries the position of the last event that left, so the client resumes
        from what it really got."""
        if not self._open:
            return
        self._open = False
        self._seq += 1
        text = json.dumps(
            {"type": "closed", "code": code, "reason": reason}, separators=(",", ":")
        )
        self._queue.clear()
        self._queued_bytes = len(text)
        self._roomy.set()
        self._queue.append((self._seq, text, self._delivered))
        self._woken()
        # Soon, not now: a close can come from inside the chat's own fan-out or command, which
        # goes on with this member; a WebSocket's close reaches the chat later too.
        self._loop.call_soon(self._on_closed, self, code)

    # -- the queue -------------------------------------------------------------------

    def _push(self, text: str) -> bool:
        if not self._open:
            return False
        self._seq += 1
        position, id_line = positions(self.last_ids)
        stream = self.stream
        if (
            stream is not None
            and not self._queue
            and self._batch_bytes + stream.buffered <= self._high_water
        ):
            self._batch_event(text, id_line)
            if not self._batch_due:
                self._batch_due = True
                self._loop.call_soon(self._send_batch)
            self._delivered = position
            return True
        size = len(text)
        if (
            len(self._queue) >= self._max_messages
            or self._queued_bytes + size > self._max_bytes
        ):
            self._counters.slow_consumers_closed += 1
            self.close(1008, "slow consumer")
            return False
        self._queue.append((self._seq, text, position))
        self._queued_bytes += size
        if (
            len(self._queue) * 2 >= self._max_messages
            or self._queued_bytes * 2 >= self._max_bytes
        ):
            self._roomy.clear()
        self._woken()
        return True

    def _woken(self) -> None:
        self._wake.set()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _dropped(self, count: int) -> None:
        """``count`` events left the queue (written or acknowledged)."""
        queue = self._queue
        for _ in range(count):
            _, text, self._delivered = queue.popleft()
            self._queued_bytes -= len(text)
        if (
            len(queue) * 2 < self._max_messages
            and self._queued_bytes * 2 < self._max_bytes
        ):
            self._roomy.set()

    # -- Server-Sent Events ----------------------------------------------------------

    def _batch_event(self, text: str, id_line: bytes) -> None:
        """One event into this turn's write: its ``data:`` line (shared) and its ``id:`` line."""
        self._batch += (sse_data(text), id_line)
        self._batch_bytes += len(text)

    def _send_batch(self) -> None:
        """Write what this turn sent as one piece (the pieces stay in order)."""
        self._batch_due = False
        if self._batch and self.stream is not None:
            self.stream.write(*self._batch)
        self._batch.clear()
        self._batch_bytes = 0

    async def pump(self, stream: ResponseStream) -> None:
        """Write this session's events to ``stream`` until the stream or the session ends."""
        self.stream = stream
        stream.write(_RETRY)
        stream.on_end = self._wake.set
        try:
            while True:
                self._flush(stream)
                if stream.ended or (not self._open and not self._queue):
                    break
                if (
                    self._queue
                ):  # over the high-water mark: the transport paused writing
                    await stream.drain()  # until the socket took enough
                    continue
                left = self._identity.expires_at - time.time()
                if left <= 0:  # as a WebSocket is closed when its token expires
                    self.close(1008, "token expired")
                    continue
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), min(HEARTBEAT_S, left))
                except TimeoutError:
                    stream.write(_HEARTBEAT)
        finally:
            stream.on_end = None
            self._send_batch()
            self.stream = None

    def _flush(self, stream: ResponseStream) -> None:
        """What waits in the queue, as far as the socket's high-water mark lets, in one piece."""
        written = 0
        for _, text, position in self._queue:
            if self._batch_bytes + stream.buffered > self._high_water and self._open:
                break  # (a closed session's one event, ``closed``, goes out anyway)
            self._batch_event(text, f"id: {position}\n\n".encode())
            written += 1
        if written:
            self._dropped(written)
        self._send_batch()

    # -- long-polling ----------------------------------------------------------------

    def after(self, ack: int) -> tuple[list[str], int, str]:
        """What was queued after ``ack`` (dropping what it acknowledges), the cursor, the position."""
        acked = 0
        for seq, _, _ in self._queue:
            if seq > ack:
                break
            acked += 1
        if acked:
            self._dropped(acked)
        events = [text for _, text, _ in self._queue]
        position = self._queue[-1][2] if self._queue else format_position(self.last_ids)
        return events, self._seq, position

    async def poll(self, ack: int, wait_s: float) -> tuple[list[str], int, str]:
        """``after(ack)``, waiting up to ``wait_s`` for something when nothing is there yet."""
        self.last_poll = time.monotonic()
        waiting = self._waiter
        if waiting is not None and not waiting.done():
            waiting.set_result(None)  # a newer poll: the one waiting answers now
        answer = self.after(ack)
        if answer[0] or wait_s <= 0 or not self._open:
            return answer
        self._waiter = waiter = asyncio.get_running_loop().create_future()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, wait_s)
        finally:
            if self._waiter is waiter:
                self._waiter = None
            self.last_poll = time.monotonic()
        return self.after(ack)

    def stop_waiting(self) -> None:
        """The server is stopping: a waiting poll answers now."""
        self._woken()

    @property
    def polled_out(self) -> bool:
        """Closed, and its last events were fetched: nothing more to keep it for."""
        return not self._open and not self._queue
