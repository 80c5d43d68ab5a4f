"""The server API's reads of a room: ``presence`` (who is in it now, on every node) and
``history`` (its newest entries, paged with ``before`` as the chat's ``history`` is).

An application reads a room as its owner would: the whole of what the store keeps
(retention applies), with no member's floor. Each entry is the object the chat's
``message`` frame (or ``member`` frame, for a membership event) carries
(``rawws.chat.wire.message_fields``), so a backend parses one format.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rawws.apps.calls import ApiCall
from rawws.apps.keys import READ
from rawws.apps.rooms_calls import reachable_room
from rawws.apps.routes import ApiRoutes
from rawws.chat import wire
from rawws.chat.app import ChatApp

if TYPE_CHECKING:  # setup names this module in CALLS
    from rawws.apps.setup import ApiContext


class RoomReads:
    def __init__(self, app: ChatApp) -> None:
        self.app = app

    async def presence(self, call: ApiCall) -> dict[str, Any]:
        """The users with a connection in the room on any live node (the chat's ``who``)."""
        info = await reachable_room(call, self.app)
        return {"room": info.room, "users": self.app.chat.presence.users(info.room)}

    async def history(self, call: ApiCall) -> dict[str, Any]:
        """The ``limit`` entries before id ``before`` (none: the newest), oldest first; a
        ``limit`` past the chat's most is that most, as in the chat's ``history``."""
        before = call.body.integer("before", required=False, minimum=1)
        limit = call.body.integer("limit", required=False, minimum=1)
        info = await reachable_room(call, self.app)
        count = wire.DEFAULT_HISTORY_LIMIT if limit is None else limit
        found = await self.app.health.call(
            "api",
            self.app.store.messages_before(
                info.room, before, min(count, wire.MAX_HISTORY_LIMIT)
            ),
        )
        return {"room": info.room, "messages": [wire.message_fields(m) for m in found]}


def add_calls(routes: ApiRoutes, context: ApiContext) -> None:
    reads = RoomReads(context.app)
    routes.add("presence", READ, reads.presence)
    routes.add("history", READ, reads.history)
