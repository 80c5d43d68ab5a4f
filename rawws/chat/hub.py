"""Rooms and fan-out, with no I/O: who is in which room, who is present, who receives a message.

A message is encoded to frame bytes **once** and the same bytes are offered to
every uncompressed member (server frames are unmasked, so they are identical).
Those bytes are a ``SharedFrame``: a member in shared compression (no context
takeover) takes its compressed frame, deflated once per window size for the
whole room; only a member with a deflate context of its own encodes for
itself. Delivery never awaits: members queue into their bounded outboxes.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from rawws.core.deflate import SharedFrame
from rawws.core.frames import TunedFrameProtocol


class Member(Protocol):
    """One connection in one or more rooms."""

    user: str

    def deliver(
        self, room: str, message_id: int | None, text: str, frame: bytes
    ) -> None:
        """Queue ``text`` (already framed as ``frame`` for uncompressed peers) from ``room``."""
        ...


_ENCODER = TunedFrameProtocol(client=False, extensions=[])


def text_frame(text: str) -> SharedFrame:
    """An unmasked, uncompressed server text frame: what every plain connection would send.

    It also gives the compressed frame of the same text (``SharedFrame.deflated``), built on first use.
    """
    return SharedFrame(_ENCODER.send_data(text, True), text)


class Hub:
    def __init__(self) -> None:
        self._rooms: dict[str, dict[Member, None]] = {}  # insertion-ordered sets
        self._present: dict[str, Counter[str]] = {}  # room → user → connections

    def join(self, member: Member, room: str) -> bool:
        """Add ``member``; ``True`` when its user was not present in the room before."""
        members = self._rooms.setdefault(room, {})
        if member in members:
            return False
        members[member] = None
        present = self._present.setdefault(room, Counter())
        present[member.user] += 1
        return present[member.user] == 1

    def leave(self, member: Member, room: str) -> bool:
        """Remove ``member``; ``True`` when that was its user's last connection in the room."""
        members = self._rooms.get(room)
        if members is None or member not in members:
            return False
        del members[member]
        present = self._present[room]
        present[member.user] -= 1
        left = present[member.user] == 0
        if left:
            del present[member.user]
        if not members:
            del self._rooms[room]
            del self._present[room]
        return left

    def is_member(self, member: Member, room: str) -> bool:
        return member in self._rooms.get(room, ())

    def members(self, room: str) -> list[Member]:
        """The connections in ``room`` on this node (a membership event looks for its target)."""
        return list(self._rooms.get(room, ()))

    def occupied(self, room: str) -> bool:
        """Some member is in ``room``."""
        return room in self._rooms

    def users(self, room: str) -> list[str]:
        return sorted(self._present.get(room, ()))

    def presence(self) -> dict[str, list[str]]:
        """Every room with members here and its users (a node's heartbeat carries this)."""
        return {room: sorted(users) for room, users in self._present.items()}

    def rooms(self) -> list[str]:
        return sorted(self._rooms)

    def publish(
        self,
        room: str,
        text: str,
        message_id: int | None = None,
        *,
        exclude: Member | None = None,
        exclude_user: str | None = None,
    ) -> int:
        """Offer ``text`` to every member of ``room`` (but ``exclude``, and every connection of
        ``exclude_user``), framed once; how many got it."""
        members = self._rooms.get(room)
        if not members:
            return 0
        frame = text_frame(text)
        reached = 0
        # A loop of its own (``exclude`` is not looked at): a message's pays no extra test.
        if exclude_user is not None:
            for member in list(members):
                if member.user != exclude_user:
                    member.deliver(room, message_id, text, frame)
                    reached += 1
            return reached
        for member in list(members):
            if member is not exclude:
                member.deliver(room, message_id, text, frame)
                reached += 1
        return reached
