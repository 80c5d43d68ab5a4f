"""Which of a room's messages the terminal client has shown: each is shown once, however often it arrives.

After a reconnect the client re-joins with ``since``; the replay and the live
messages may overlap, and messages may come out of order across a gap repair.
"""

from __future__ import annotations


class RoomLog:
    """The ids of one room's messages that were shown (or were history when we joined).

    Everything up to ``floor`` is done; ``above`` holds ids past it that came out
    of order. Ids increase by one per room, so in the normal case ``above`` stays
    empty and this is a per-room high-water mark; a gap is re-fetched on
    recovery because ``since`` is the floor, and the ids past it are not shown twice.
    """

    __slots__ = ("above", "floor")

    def __init__(self, floor: int | None = None) -> None:
        self.floor = floor  # None until the server's ``joined`` says where the room was
        self.above: set[int] = set()

    @property
    def since(self) -> int | None:
        """What to re-join with: every id above it is wanted."""
        return self.floor

    def joined(self, last_id: int) -> bool:
        """The server's ``joined``; ``False`` when the room went back in time (its data was reset)."""
        if self.floor is None:
            self.floor = last_id  # a fresh join: what came before is history, not news
            return True
        if last_id >= self.floor:
            return True  # a re-join: the replay brings what is past the floor
        self.floor, self.above = last_id, set()
        return False

    def first_sight(self, message_id: int) -> bool:
        """Record ``message_id``; ``True`` the first time only."""
        floor = self.floor or 0
        if message_id <= floor or message_id in self.above:
            return False
        self.above.add(message_id)
        while floor + 1 in self.above:
            floor += 1
            self.above.remove(floor)
        self.floor = floor
        return True
