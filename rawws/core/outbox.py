"""A connection's bounded write queue: frames wait here while the socket is busy.

The outbox is bounded both in bytes and in messages. ``push`` never blocks and
never drops silently: it answers whether the data fit, and the caller applies
the slow-consumer policy when it did not. An empty outbox takes any one
message, however large (the largest is bounded by the message size limit), so
the bound is ``max_bytes`` plus one message.

The chunks are references, not copies: a broadcast queues the one frame object
it built on every receiver, so a thousand receivers lagging by the same
messages hold those messages once. Copies are made only on the way out:
``take`` joins what it hands over into one buffer (one write carries it), and
the transport copies what the socket does not take into its own buffer. So
``take`` hands over at most ``limit`` bytes (or one chunk, if that is larger)
and leaves the rest queued as references: what a lagging reader costs in
copies is bounded by the write, not by how far behind it is.
"""

from __future__ import annotations


class Outbox:
    __slots__ = ("max_bytes", "max_messages", "_chunks", "pending_bytes", "overflowed")

    def __init__(self, max_bytes: int, max_messages: int) -> None:
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        # A list, not a deque: chunks are only appended and taken all at once, and an
        # empty list is 56 bytes where an empty deque is 600 (this is per connection).
        self._chunks: list[bytes] = []
        #: Bytes queued, not yet taken.
        self.pending_bytes = 0
        #: Set once a push did not fit; the connection is then being closed.
        self.overflowed = False

    def __len__(self) -> int:
        return len(self._chunks)

    def __bool__(self) -> bool:
        return bool(self._chunks)

    def push(self, data: bytes) -> bool:
        """Queue ``data``; ``False`` (and nothing queued) when it would pass a bound."""
        if self._chunks and (
            self.pending_bytes + len(data) > self.max_bytes
            or len(self._chunks) >= self.max_messages
        ):
            self.overflowed = True
            return False
        self._chunks.append(data)
        self.pending_bytes += len(data)
        return True

    def push_control(self, data: bytes) -> None:
        """Queue a control frame (a close) even past the bounds: it must reach the peer."""
        self._chunks.append(data)
        self.pending_bytes += len(data)

    def discard(self) -> int:
        """Drop every queued frame (the peer is being closed as too slow): how many bytes were dropped.

        Frames are whole here (``take`` hands them to the transport whole), so the
        close frame pushed next still lands on a frame boundary, with nothing
        waiting before it but what the transport already holds.
        """
        dropped = self.pending_bytes
        self._chunks.clear()
        self.pending_bytes = 0
        return dropped

    def take(self, limit: int | None = None) -> bytes:
        """What is queued, in order, as one buffer: at most ``limit`` bytes, or the first chunk if it alone is more.

        Without ``limit`` (or when everything fits, the usual case) it is everything.
        """
        chunks = self._chunks
        if limit is None or self.pending_bytes <= limit:
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
            self.pending_bytes = 0
            return data
        size = len(chunks[0])
        end = 1
        while end < len(chunks) and size + len(chunks[end]) <= limit:
            size += len(chunks[end])
            end += 1
        data = chunks[0] if end == 1 else b"".join(chunks[:end])
        del chunks[:end]
        self.pending_bytes -= size
        return data
