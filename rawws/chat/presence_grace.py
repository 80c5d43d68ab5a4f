"""The end of a presence grace (``Hub`` lingering): the users whose grace ran out leave
their rooms, here and, through the bus, on every node. Asyncio at the edge; the decision
is the hub's (``Hub.expire``)."""

from __future__ import annotations

import asyncio
import time

from rawws.chat import wire as chat
from rawws.chat.feed import RoomFeed
from rawws.chat.hub import Hub
from rawws.chat.presence import ClusterPresence


async def end_graces(hub: Hub, feed: RoomFeed, presence: ClusterPresence) -> None:
    """Forever: every half grace (at most a second), the users gone for good say ``left``."""
    while True:
        await asyncio.sleep(min(1.0, hub.grace_s / 2))
        for room, user in hub.expire(time.monotonic()):
            feed.here(room, user, False)
            if not presence.elsewhere(room, user):  # not back on another node
                hub.publish(room, chat.presence(room, user, "left"))
