"""``typing {room}``: "USER is typing…" for the room's other users, on every node, never stored.

The rules: the connection joined the room (``rawws.chat.access``); a muted member is
answered ``muted``, as their ``say`` would be; past one ``typing`` per second per user
and room the rest are dropped without an answer (a client sends one per keystroke
burst; nothing is lost but a repeat of the same hint). That rate is kept per node: a
user typing on connections on two nodes may be let through once a second on each.

What is let through is framed once (``wire_reads.typing``) and offered to the room's
connections on this node, except every connection of the typist (``Hub.publish``'s
``exclude_user``); a ``Typing`` bus event has each other node do the same for its
own. Only joined connections are in the hub, so a connection that has not joined
the room never hears it. A lost bus event is a missing hint, never repaired.

The rate map holds (room, user) → when the last one was let through, least recent
first: entries older than the interval are useless and are dropped as new ones come,
and it never holds more than ``max_tracked``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from rawws.chat import wire_reads as wr
from rawws.chat.codec import Typing
from rawws.chat.feed import RoomFeed
from rawws.chat.hub import Hub
from rawws.chat.member import ChatMember
from rawws.chat.moderation import refuse_muted

MAX_TRACKED = 65_536  # (room, user) pairs whose last typing is remembered


class TypingRelay:
    """Lets ``typing`` through at the allowed rate and fans it out here and to the other nodes."""

    def __init__(
        self,
        hub: Hub,
        feed: RoomFeed,
        node: str,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float = wr.TYPING_INTERVAL_S,
    ) -> None:
        self.hub = hub
        self.feed = feed
        feed.on_typing = self.heard
        self.node = node
        self.clock = clock
        self.interval_s = interval_s
        self.max_tracked = MAX_TRACKED
        self.last: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.dropped = 0  # typing frames over the rate

    def typing(self, member: ChatMember, command: wr.Typing) -> None:
        """A joined connection's ``typing``: refused when muted, dropped over the rate, else told."""
        room, user = command.room, member.user
        if member.entering and room in member.entering:
            return  # the room may be a feed, not known yet (``rawws.chat.read_only``)
        if member.muted and refuse_muted(member, room, None, time.time()):
            return
        if not self._allowed(room, user):
            self.dropped += 1
            return
        self.hub.publish(room, wr.typing(room, user), exclude_user=user)
        self.feed.tell(Typing(self.node, room, user))

    def heard(self, event: Typing) -> None:
        """Another node let a ``typing`` through: this node's connections of the room hear it."""
        text = wr.typing(event.room, event.user)
        self.hub.publish(event.room, text, exclude_user=event.user)

    def _allowed(self, room: str, user: str) -> bool:
        now = self.clock()
        key = (room, user)
        last = self.last.get(key)
        if last is not None and now - last < self.interval_s:
            return False
        self.last[key] = now
        self.last.move_to_end(key)
        while (
            self.last
        ):  # the least recent first: drop those past the interval, and any excess
            oldest_key, oldest = next(iter(self.last.items()))
            if now - oldest < self.interval_s and len(self.last) <= self.max_tracked:
                break
            del self.last[oldest_key]
        return True
