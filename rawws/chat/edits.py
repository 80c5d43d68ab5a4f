"""``edit`` and ``delete``: run off the hot path, stored as events in the room's sequence, delivered in it.

The store decides, in one transaction under the room's lock (``Store.change_message``):
whether the id is a message of the room still there, whether it is the user's (or, for a
deletion, whether the user is the room's owner or a moderator), and the event's id. The
answer is ``ack {ref, room, id}`` with the event's id, and the event goes to this node's
feed and the bus like a message (``RoomFeed.stored_here``), so every node delivers it in
its place, once: as ``edited`` or ``deleted`` frames (``rawws.chat.wire_edits``).

A member is never sent a change of a message from before their membership (at or below
their ``since_id``, ``ChatMember.floors``): an edit would hand them a text they could not
read otherwise. Live delivery (``deliver``) and a replay (``ChatHandler._catch_up``,
through ``unseen``) skip it alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from rawws.chat import wire as chat
from rawws.chat import wire_edits as edits
from rawws.chat.access import authorize_publishing
from rawws.chat.hub import Hub, Member
from rawws.chat.member import ChatMember
from rawws.chat.moderation import refuse_muted
from rawws.chat.read_only import kind_known
from rawws.errors import ChatError
from rawws.store import Store, StoredMessage
from rawws.store.base import MessageNotFound, NotYours
from rawws.store.outage import StoreHealth, StoreUnavailable

log = logging.getLogger("rawws.chat")


class Editor:
    """Runs ``edit`` and ``delete`` commands and delivers their events to this node's hub."""

    def __init__(
        self,
        store: Store,
        health: StoreHealth,
        hub: Hub,
        publish: Callable[[StoredMessage], None],
    ) -> None:
        self.store = store
        self.health = health
        self.hub = hub
        self.publish = publish  # a stored event: to this node's feed and the bus

    def muted(self, member: ChatMember, command: edits.MessageChange) -> bool:
        """A muted member's ``edit`` is refused as their ``say`` is (answered ``muted``); a
        ``delete`` of their own message is not: taking words back is no speaking."""
        if not member.muted or not isinstance(command, edits.Edit):
            return False
        return refuse_muted(member, command.room, command.ref, time.time())

    async def run(self, member: ChatMember, command: edits.MessageChange) -> None:
        """One ``edit`` or ``delete``, answered on ``member``: ``ack``, or the ``error`` that stopped it."""
        text = command.text if isinstance(command, edits.Edit) else None
        try:
            if command.room in member.entering:  # a feed's kind may not be known yet
                await self.health.call(
                    "editing", kind_known(member, command.room, self.store)
                )
                authorize_publishing(command, member)
            stored = await self.health.call(
                "editing",
                self.store.change_message(
                    command.room, command.id, member.user, text, time.time()
                ),
            )
        except ChatError as error:
            member.send(chat.error(error.code, error.message, error.ref))
            return
        except MessageNotFound:
            refusal = f"no message {command.id} in {command.room}"
            member.send(chat.error(edits.NOT_FOUND, refusal, command.ref))
            return
        except NotYours:
            who = (
                "its author"
                if text is not None
                else "its author, an owner or a moderator"
            )
            refusal = f"message {command.id} is not yours: only {who} may do that"
            member.send(chat.error(chat.FORBIDDEN, refusal, command.ref))
            return
        except Exception as exc:
            if not isinstance(exc, StoreUnavailable):
                log.exception(
                    "%s failed room=%s", type(command).__name__.lower(), command.room
                )
            member.send(
                chat.error(chat.UNAVAILABLE, "not done; send it again", command.ref)
            )
            return
        member.send(chat.ack(command.ref, stored.room, stored.id))
        self.publish(stored)

    def deliver(self, event: StoredMessage) -> int:
        """An ``edited`` or ``deleted`` event reached this node's hub in its place: to the room's
        connections that were sent its message (framed once); how many got it."""
        room = event.room

        def sees(member: Member) -> bool:
            return not (isinstance(member, ChatMember) and unseen(member, event))

        return self.hub.publish_where(room, chat.message(event), event.id, sees)


def unseen(member: ChatMember, event: StoredMessage) -> bool:
    """``event`` changes a message from before ``member``'s membership: it is not theirs to see."""
    return event.about is not None and event.about <= member.floors.get(event.room, 0)
