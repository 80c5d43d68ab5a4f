"""What a node does when the server API removes a room or disconnects a user, on every node.

The node that got the call does it to its own connections first and then tells the
others over the bus (``RoomDeleted``, ``Disconnected``); each of them does the same
to its own. A room removed:

* each connection in it is told ``removed`` (``reason: "deleted"``, ``by``: the API
  key's name), as a kicked user is, and taken out of it;
* the node drops what it kept of the room: its sequencer and its heartbeat head
  (``RoomFeed.forget_room``), and the memberships it cached. A room made later under
  the same name is numbered from 1 again in the store; a node that kept the old
  room's sequencer would hold those ids as already delivered (or wait for a gap that
  never fills), so it starts that room afresh at its next join, from the store's
  last id, like any room it never had.

A user disconnected: each of their connections is closed with 1000 and the reason
``DISCONNECTED_REASON``. Not a ban and not a stop: nothing is stored, they may
connect again at once.

The bus carries both as it carries everything: once, with no repair. A node cut off
from it when the call is made misses it: a disconnect there does not happen (the
call's answer counts only the connections closed on its own node), and a removed
room's connections there stay in it until they leave. What they say there meanwhile
is stored in a new public row of that name (the writer makes a room it finds
missing, as for any first ``say``), which ``rooms_delete`` removes again; a private
room's name stays closed to everyone else, since its door is its stored members.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from rawws.chat.codec import Disconnected, RoomDeleted
from rawws.chat.doors import MembershipCache
from rawws.chat.feed import RoomFeed
from rawws.chat.hub import Hub
from rawws.chat.member import ChatMember
from rawws.chat.stops import ConnectionStops
from rawws.core.closecodes import NORMAL_CLOSURE

log = logging.getLogger("rawws.chat")

DISCONNECTED_CODE = NORMAL_CLOSURE
DISCONNECTED_REASON = "disconnected by the application"
DELETED = "deleted"  # the ``reason`` of the ``removed`` frame


def deleted_frame(room: str, by: str) -> str:
    """``removed`` as a kick sends it, with no id: the room, its ids and its entries are gone."""
    payload = {"type": "removed", "room": room, "reason": DELETED, "by": by}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


class Removals:
    """Applies room removals and disconnects to this node's connections, and tells the others."""

    def __init__(
        self,
        hub: Hub,
        feed: RoomFeed,
        leave: Callable[[ChatMember, str], None],
        cache: MembershipCache,
        stops: ConnectionStops,
    ) -> None:
        self.hub = hub
        self.feed = feed
        self.leave = (
            leave  # takes a connection out of a room (presence, the feed's room)
        )
        self.cache = cache
        self.stops = stops
        feed.on_removal = self._heard

    # -- the node that got the call ---------------------------------------------------------

    def room_deleted_here(self, room: str, by: str) -> int:
        """``room`` was removed from the store here: out with this node's connections, then the others'.

        Returns how many connections left it on this node."""
        left = self._room_deleted(room, by)
        self.feed.tell(RoomDeleted(self.feed.node, room, by))
        return left

    def disconnect_here(self, user: str) -> int:
        """Close ``user``'s connections here, and tell the other nodes to close theirs: how many here."""
        closed = self._disconnect(user)
        self.feed.tell(Disconnected(self.feed.node, user))
        return closed

    # -- every node ------------------------------------------------------------------------------

    def _heard(self, event: RoomDeleted | Disconnected) -> None:
        if isinstance(event, RoomDeleted):
            self._room_deleted(event.room, event.by)
        else:
            self._disconnect(event.user)

    def _room_deleted(self, room: str, by: str) -> int:
        frame = deleted_frame(room, by)
        left = 0
        for member in self.hub.members(room):
            if isinstance(member, ChatMember):
                member.send(frame)
                self.leave(member, room)
                left += 1
        self.feed.forget_room(room)
        self.cache.evict_room(room)
        if left:
            log.info("room removed by the API: %d connection(s) left it", left)
        return left

    def _disconnect(self, user: str) -> int:
        peers = self.stops.peers(user)
        for peer in peers:
            peer.close(DISCONNECTED_CODE, DISCONNECTED_REASON)
        if peers:
            log.info("disconnected by the API: %d connection(s) closed", len(peers))
        return len(peers)
