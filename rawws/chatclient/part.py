"""``/part [ROOM]`` on the client's side: leave a room for good (``leave`` with ``for_good``). No I/O.

A plain ``/leave`` drops the room at once: the server never refuses it for a room
joined. A part may be refused (the room's owner hands it over first; nobody leaves
a direct room for good), so the room stays until the server's ``left`` answers
it; the refusal is an ``error`` without a ``ref``, shown as it comes. The user's
other connections are told with ``removed`` (reason ``left``). ``ChatState``
inherits this; it is apart so the state machine stays one screen of rules.
"""

from __future__ import annotations

from typing import Any

from rawws.chat.client_frames import leave_frame
from rawws.chat.wire import BAD_ROOM, FORBIDDEN, is_direct

Frame = dict[str, Any]

# The refusals of a part (docs/protocol.md): they carry no ref.
_PART_REFUSALS = (BAD_ROOM, FORBIDDEN)


class Parting:
    """The rooms a ``/part`` was sent for and the server has not answered yet."""

    # ChatState's, read and written here
    rooms: dict[str, Any]
    current: str | None

    def _part_init(self) -> None:
        self._parting: set[str] = set()

    def _part(self, room: str) -> tuple[list[str], str | None]:
        """``/part ROOM``: (frames to send, why not)."""
        if room not in self.rooms:
            return [], f"you are not in {room}"
        if is_direct(room):
            return [], "nobody leaves a direct room for good: /leave closes it here"
        self._parting.add(room)
        return [leave_frame(room, for_good=True)], None

    def _parted(self, room: str) -> bool:
        """The server's ``left`` for ``room``: ``True`` when it answers a part (drop the room)."""
        if room not in self._parting:
            return False
        self._parting.discard(room)
        return room in self.rooms

    def _other_room(self, room: str) -> str | None:
        """The room to talk in once ``room`` is parted: the last other one joined."""
        return next((other for other in reversed(self.rooms) if other != room), None)

    def _part_refused(self, frame: Frame) -> None:
        """An ``error`` without a ref that may refuse a part: the rooms stay ours, not parted."""
        if frame.get("ref") is None and frame.get("code") in _PART_REFUSALS:
            self._parting.clear()

    def _parts_unanswered(self) -> list[str]:
        """The connection dropped: parts not answered, whose rooms are not joined again (the
        server may have ended the membership; a re-join of a public room would start a new one)."""
        rooms = [room for room in self._parting if room in self.rooms]
        for room in rooms:
            del self.rooms[room]
        if self.current is not None and self.current not in self.rooms:
            self.current = next(reversed(self.rooms), None)
        self._parting.clear()
        return [
            f"the connection dropped before /part {room} was answered; not joining it again"
            " (/rooms tells whether you are still a member)"
            for room in rooms
        ]


def left_line(frame: Frame) -> str:
    """The ``left`` answer in words: a part's carries the stored event's ``id``."""
    room = frame["room"]
    return f"you left {room} for good" if "id" in frame else f"left {room}"
