"""What a peer's input may cost: frames and inflated bytes per second, paid before they are processed.

A compressed frame of a kilobyte can inflate to a megabyte, and every byte
inflated is then checked as UTF-8 and handed on: the cost of a compressed frame
is its *payload after inflation*, not its size on the wire. A plain payload
costs in proportion to the bytes the peer really sent, and what one read holds
is bounded by the transport, so it is not charged by the byte: only its frame
is (a flood of tiny frames costs per frame, whatever their size). ``ReadBudget``
is two token buckets, one of frames and one of inflated bytes, that the core
(``rawws.core.protocol``) draws from for each frame and each slice of payload
it parses (the inflater works in slices of ``INFLATE_SLICE_BYTES``,
``rawws.core.extensions``). Once either bucket is empty the core parses
nothing more and says so (``WebSocket.throttled``); the edge stops reading the
socket and resumes when ``ready_in`` has passed. A peer that sends faster than
the budget is slowed down by TCP's own flow control, never closed for it.

What may overdraw a bucket is bounded: the core checks the budget *before* each
step, and one step is one frame header or one slice of payload, so the debt is
at most one slice (plus a control frame). No clock here: the caller passes
its own time to ``refill`` (sans-I/O).
"""

from __future__ import annotations

#: The bucket must hold this share of its capacity before parsing resumes, so that a throttled peer
#: costs a timer every 1/RESUME_FRACTION of the bucket, not one per slice.
RESUME_FRACTION = 8


class ReadBudget:
    """Frames and bytes a peer may have processed: ``capacity`` at once, refilled at ``per_s`` each.

    The capacity of each bucket is ``burst_s`` seconds of its rate: what arrives
    in a burst is processed at once, and beyond it the peer waits. A sixteenth of
    a second (4 MiB at 64 MiB/s) keeps what one burst holds the event loop for to
    ~10–40 ms (measured: another client's round trip peaked at 41 ms during a
    flood of compressed frames, 166 ms with a quarter second).
    """

    __slots__ = (
        "frames_per_s",
        "bytes_per_s",
        "frame_capacity",
        "byte_capacity",
        "_frames_granted",
        "_bytes_granted",
        "_updated",
        "frames_spent",
        "bytes_spent",
    )

    # Each bucket is kept as what was granted (the burst plus the refills) against what was
    # spent: a step then updates only the two totals, the one thing done for every frame.

    def __init__(
        self,
        frames_per_s: float,
        bytes_per_s: float,
        now: float,
        *,
        burst_s: float = 0.0625,
    ) -> None:
        if frames_per_s <= 0 or bytes_per_s <= 0 or burst_s <= 0:
            raise ValueError("a read budget's rates and burst must be positive")
        self.frames_per_s = frames_per_s
        self.bytes_per_s = bytes_per_s
        self.frame_capacity = max(1.0, frames_per_s * burst_s)
        self.byte_capacity = max(1.0, bytes_per_s * burst_s)
        self._frames_granted = self.frame_capacity
        self._bytes_granted = self.byte_capacity
        self._updated = now
        #: Totals since the connection opened (for tests, metrics and the soak).
        self.frames_spent = 0
        self.bytes_spent = 0

    @property
    def frames(self) -> float:
        """Frames left in the bucket (below zero: overdrawn)."""
        return self._frames_granted - self.frames_spent

    @property
    def bytes(self) -> float:
        """Payload bytes left in the bucket (below zero: overdrawn)."""
        return self._bytes_granted - self.bytes_spent

    @property
    def exhausted(self) -> bool:
        """Nothing more may be parsed until a ``refill``: a bucket is overdrawn."""
        return (
            self.frames_spent > self._frames_granted
            or self.bytes_spent > self._bytes_granted
        )

    def spend(self, frames: int, nbytes: int) -> None:
        """Charge what a step cost (one frame header, or ``nbytes`` of payload after inflation)."""
        self.frames_spent += frames
        self.bytes_spent += nbytes

    def charge(self, frames: int, nbytes: int) -> bool:
        """``spend``, then whether the budget is overdrawn now (the one call a parsing step makes)."""
        self.frames_spent += frames
        self.bytes_spent += nbytes
        return (
            self.frames_spent > self._frames_granted
            or self.bytes_spent > self._bytes_granted
        )

    def refill(self, now: float) -> None:
        elapsed = now - self._updated
        if elapsed <= 0:
            return
        self._updated = now
        # A bucket holds at most its capacity: what was granted runs at most that far ahead.
        self._frames_granted = min(
            self.frames_spent + self.frame_capacity,
            self._frames_granted + elapsed * self.frames_per_s,
        )
        self._bytes_granted = min(
            self.bytes_spent + self.byte_capacity,
            self._bytes_granted + elapsed * self.bytes_per_s,
        )

    def ready_in(self, now: float) -> float:
        """Seconds until both buckets hold ``1/RESUME_FRACTION`` of their capacity again (0: now)."""
        self.refill(now)
        frames_short = self.frame_capacity / RESUME_FRACTION - self.frames
        bytes_short = self.byte_capacity / RESUME_FRACTION - self.bytes
        return max(
            0.0, frames_short / self.frames_per_s, bytes_short / self.bytes_per_s
        )
