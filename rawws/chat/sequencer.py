"""Per-room ordering with no I/O: ids in, ``deliver`` / ``fetch`` decisions out.

Ids are given by the shared store, per room, without gaps. A node knows the
next id it owes its members in each room with local members (``next_id``). A
message that arrives ahead of it is held (at most ``hold_limit`` of them); the
gap is then read from the store by the caller (``wants_fetch``), and whatever
the store returns is fed back through ``fetched``. Beyond the bound, held
messages are dropped: they are in the store and the same fetch brings them.
So the delivered sequence is exactly ``next_id, next_id + 1, …``: never out of
order, never twice, never skipped.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_HOLD_LIMIT = (
    1024  # messages held ahead of a gap, per room, before falling back to the store
)


class RoomSequencer(Generic[T]):
    """One room's delivery order on one node.

    ``next_id`` is ``None`` until the caller sets the base (the room's last id
    when its first local member joined, ``start``); until then everything is held.
    """

    __slots__ = ("next_id", "newest_known", "hold_limit", "_held", "overflowed")

    def __init__(self, hold_limit: int = DEFAULT_HOLD_LIMIT) -> None:
        if hold_limit < 1:
            raise ValueError("hold_limit must be at least 1")
        self.next_id: int | None = None
        self.newest_known = 0  # the highest id known to exist in the store
        self.hold_limit = hold_limit
        self._held: dict[int, T] = {}
        self.overflowed = (
            0  # messages dropped from the hold (read from the store instead)
        )

    @property
    def started(self) -> bool:
        return self.next_id is not None

    @property
    def held(self) -> int:
        return len(self._held)

    def start(self, last_id: int) -> list[T]:
        """Set the base (``last_id`` is delivered already, by the store replay); what can go out now."""
        if self.next_id is not None:
            return []
        self.next_id = last_id + 1
        for stale in [i for i in self._held if i <= last_id]:
            del self._held[stale]
        return self._release()

    def receive(self, message_id: int, item: T) -> list[T]:
        """A message seen live (from this node's commit or from the bus): what to deliver now, in order."""
        if message_id < 1:
            return []
        self.newest_known = max(self.newest_known, message_id)
        if self.next_id is not None and message_id < self.next_id:
            return []  # delivered already
        if self.next_id == message_id:
            self.next_id += 1
            released = [item]
            released.extend(self._release())
            return released
        if message_id not in self._held:
            if len(self._held) >= self.hold_limit:
                self.overflowed += 1
                if message_id < max(self._held):  # keep the ones closest to the gap
                    self._held.pop(max(self._held))
                    self._held[message_id] = item
            else:
                self._held[message_id] = item
        return []

    def note_newest(self, newest_id: int) -> None:
        """Something else (a heartbeat, the store) says ids up to ``newest_id`` exist."""
        self.newest_known = max(self.newest_known, newest_id)

    @property
    def wants_fetch(self) -> bool:
        """True when ids from ``next_id`` on exist but have not been seen: read them from the store."""
        return self.next_id is not None and self.newest_known >= self.next_id

    @property
    def fetch_after(self) -> int:
        """The id to read the store after (``messages_after(room, fetch_after, …)``)."""
        assert self.next_id is not None, "not started"
        return self.next_id - 1

    def fetched(self, page: list[tuple[int, T]]) -> list[T]:
        """Messages read from the store (ids ascending): what to deliver now, in order."""
        out: list[T] = []
        for message_id, item in page:
            self._held.pop(message_id, None)  # the store's copy wins: same message
            out.extend(self.receive(message_id, item))
        return out

    def _release(self) -> list[T]:
        out: list[T] = []
        assert self.next_id is not None
        while self.next_id in self._held:
            out.append(self._held.pop(self.next_id))
            self.next_id += 1
        return out
