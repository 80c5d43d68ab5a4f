"""``retention``: a room's owner keeps its history for less than the server does.

Who may is decided in ``rawws.chat.access.authorize_retention``; the bounds are stored
on the room's row, and every node's sweep (``rawws.chat.retention``) applies the
stricter of the room's and the server's at its next round.
"""

from __future__ import annotations

import logging

from rawws.chat import wire as chat
from rawws.chat.access import authorize_retention
from rawws.chat.doors import Doors
from rawws.chat.limits import ChatLimits
from rawws.chat.member import ChatMember
from rawws.chat.wire_retention import RetentionChange, retention, strictest
from rawws.errors import ChatError
from rawws.store import Store
from rawws.store.base import OWNER
from rawws.store.outage import StoreHealth, StoreUnavailable

log = logging.getLogger("rawws.chat")


class RoomRetention:
    def __init__(
        self, store: Store, health: StoreHealth, doors: Doors, limits: ChatLimits
    ) -> None:
        self.store = store
        self.health = health
        self.doors = doors
        self.max_age_s = limits.history_max_age_s  # the server's: 0 for none
        self.max_messages = limits.history_max_messages

    async def run(self, member: ChatMember, command: RetentionChange) -> None:
        """Store the room's bounds and answer with the ones in force, or the ``error`` why not."""
        room = command.room
        try:
            found = await self.doors.membership(room, member.user)
            owner = found is not None and found.role == OWNER
            admin = not owner and await self.doors.is_admin(member.user)
            authorize_retention(
                command, found, admin, self.max_age_s, self.max_messages
            )
            await self.health.call(
                "retention",
                self.store.set_room_retention(
                    room, command.max_age_s, command.max_messages
                ),
            )
            member.send(
                retention(
                    room,
                    strictest(self.max_age_s, command.max_age_s),
                    int(strictest(self.max_messages, command.max_messages)),
                    command.ref,
                )
            )
        except ChatError as error:
            member.send(chat.error(error.code, error.message, error.ref))
        except Exception as exc:
            if not isinstance(exc, StoreUnavailable):
                log.exception("retention failed room=%s", room)
            member.send(
                chat.error(chat.UNAVAILABLE, "not done; send it again", command.ref)
            )
