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
from collections.abc import Callable
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
    """``grace_s``: a user whose last connection left a room stays present that long
    (*lingering*): a reload or a reconnect within it shows nobody a ``left`` and a ``joined``.
    ``leave`` then says nothing; ``expire`` names the users whose grace ran out."""

    def __init__(self, grace_s: float = 0.0) -> None:
        self.grace_s = grace_s
        self._rooms: dict[str, dict[Member, None]] = {}  # insertion-ordered sets
        # room → user → connections; a lingering user is kept at 0 (present, unconnected)
        self._present: dict[str, Counter[str]] = {}
        self._lingering: dict[tuple[str, str], float] = {}  # (room, user) → until when

    def join(self, member: Member, room: str) -> bool:
        """Add ``member``; ``True`` when its user was not present in the room before."""
        members = self._rooms.setdefault(room, {})
        if member in members:
            return False
        members[member] = None
        present = self._present.setdefault(room, Counter())
        present[member.user] += 1
        if self._lingering and (room, member.user) in self._lingering:
            del self._lingering[(room, member.user)]
            return False  # back within the grace: never gone
        return present[member.user] == 1

    def leave(self, member: Member, room: str, now: float | None = None) -> bool:
        """Remove ``member``; ``True`` when that was its user's last connection in the room.

        ``now``: the connection closed (it did not ask to leave): with a grace, its user
        lingers until ``expire`` instead, and this says ``False``."""
        members = self._rooms.get(room)
        if members is None or member not in members:
            return False
        del members[member]
        present = self._present[room]
        present[member.user] -= 1
        left = present[member.user] == 0
        if left and now is not None and self.grace_s > 0:
            self._lingering[(room, member.user)] = now + self.grace_s
            left = False
        elif left:
            del present[member.user]
        if not members:
            del self._rooms[room]
            if not present:
                del self._present[room]
        return left

    def expire(self, now: float) -> list[tuple[str, str]]:
        """The (room, user) pairs whose grace ran out by ``now``: gone from the room now."""
        if not self._lingering:
            return []
        gone = [key for key, until in self._lingering.items() if until <= now]
        for room, user in gone:
            del self._lingering[(room, user)]
            present = self._present[room]
            del present[user]
            if not present and room not in self._rooms:
                del self._present[room]
        return gone

    def lingering(self, room: str, user: str) -> bool:
        """``user`` left ``room`` within the grace and may come back unannounced."""
        return (room, user) in self._lingering

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

    def publish_where(
        self,
        room: str,
        text: str,
        message_id: int,
        sees: Callable[[Member], bool],
    ) -> int:
        """Offer ``text`` to the members of ``room`` that ``sees`` lets see it, framed once (an
        edit of a message some of them joined after); how many got it."""
        members = [member for member in self._rooms.get(room, ()) if sees(member)]
        if not members:
            return 0
        frame = text_frame(text)
        for member in members:
            member.deliver(room, message_id, text, frame)
        return len(members)
