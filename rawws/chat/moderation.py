"""Moderation: ``kick``, ``ban``, ``unban``, ``mute``, ``unmute`` and ``role``, and how a node applies
the membership events they store.

A command is judged by ``rawws.chat.access`` against the stored roles (read here,
not cached: roles change), then stored as an event in the room's id sequence
(``Store.apply_member_event``, which changes ``room_members`` in the same
transaction) and published like a message. Every node meets the event through its
``RoomFeed`` in id order, so it is applied (``Moderator.apply``) before any later
message of the room is delivered: the kicked user's connections leave the room and
are told so (``removed``) at that exact point of the stream, on every node, and a
node that missed the bus reads the event from the store with the messages around it.
A connection that is replaying the room meets the event in its replay instead
(``Moderator.replayed``), in the same place.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from rawws.chat import wire as chat
from rawws.chat import wire_moderation as mod
from rawws.chat.access import (
    actor_role,
    authorize_actor,
    authorize_leaving,
    authorize_moderation,
)
from rawws.chat.doors import Doors
from rawws.chat.doors import never_admin as never_admin
from rawws.chat.hub import Hub
from rawws.chat.member import ChatMember
from rawws.errors import ChatError
from rawws.store import StoredMessage
from rawws.store.base import (
    MUTED,
    REMOVING_EVENTS,
    UNMUTED,
    MemberEvent,
    MembershipChanged,
)
from rawws.store.names import username_key
from rawws.store.outage import StoreUnavailable

log = logging.getLogger("rawws.chat")

#: How many times a moderation command is judged when others change the room meanwhile.
JUDGE_ATTEMPTS = 3


class Moderator:
    """Runs the moderation commands and applies membership events to this node's hub."""

    def __init__(
        self, doors: Doors, hub: Hub, leave: Callable[[ChatMember, str], None]
    ) -> None:
        """The store, its health, the bus and the admin check are the doors' (``Doors``)."""
        self.store = doors.store
        self.health = doors.health
        self.hub = hub
        self.publish = doors.publish  # a stored event: to this node's feed and the bus
        self.leave = (
            leave  # takes a connection out of a room (presence, the feed's room)
        )
        # Whether a user is a server admin: injected (``ChatHandler(is_admin=…)``), since
        # the admin flag is stored by the accounts side and the app passes its reader.
        self.is_admin = doors.is_admin
        self.evict = doors.cache.evict  # a cached membership an event made stale

    async def run(self, member: ChatMember, command: mod.Moderation) -> None:
        """One moderation command, answered on ``member``: ``moderated``, or the ``error`` that stopped it."""
        try:
            for _ in range(JUDGE_ATTEMPTS):
                event = await self._judge(member, command)
                try:
                    stored = await self.health.call(
                        "moderating", self.store.apply_member_event(event)
                    )
                    break
                except MembershipChanged:
                    continue  # another command changed what this one was judged on
            else:
                raise ChatError(
                    chat.UNAVAILABLE,
                    "the room changed meanwhile; send it again",
                    command.ref,
                )
            member.send(mod.moderated(command.ref, stored))
            self.publish(stored)
        except ChatError as error:
            member.send(chat.error(error.code, error.message, error.ref))
        except Exception as exc:
            if not isinstance(exc, StoreUnavailable):
                log.exception("%s failed", type(command).__name__.lower())
            member.send(
                chat.error(chat.UNAVAILABLE, "not done; send it again", command.ref)
            )

    async def _judge(self, member: ChatMember, command: mod.Moderation) -> MemberEvent:
        room = command.room
        info = await self.health.call("moderating", self.store.room_info(room))
        actor = await self.health.call(
            "moderating", self.store.membership(room, member.user)
        )
        role = actor_role(room, info, actor, await self.is_admin(member.user))
        authorize_actor(command, info, role)
        assert role is not None
        user = await self.health.call("moderating", self.store.get_user(command.user))
        if user is None:
            raise ChatError(chat.NO_SUCH_USER, f"no user {command.user}", command.ref)
        target = await self.health.call(
            "moderating", self.store.membership(room, user.username)
        )
        event = authorize_moderation(
            command, info, role, member.user, user.username, target, time.time()
        )
        judged_on = (
            (member.user, None if actor is None else actor.role),
            (user.username, None if target is None else target.role),
        )
        return dataclasses.replace(event, expect=judged_on)

    async def leave_for_good(self, member: ChatMember, command: chat.Leave) -> None:
        """``leave`` with ``for_good``: a stored ``left`` event ends the membership, then the
        connection leaves (``left`` with the event's id); the user's other connections
        leave where the event reaches them (``removed``, reason ``left``), on every node.

        A direct room is the pair's for good, and an owner hands the room over first.
        Without a membership (never joined since version 8, or banned) nothing is stored.
        """
        room = command.room
        try:
            found = await self.health.call(
                "leaving", self.store.membership(room, member.user)
            )
            event = authorize_leaving(command, member.user, found, time.time())
            stored = None
            if event is not None:
                stored = await self.health.call(
                    "leaving", self.store.apply_member_event(event)
                )
                self.evict(room, username_key(member.user))
        except ChatError as error:
            member.send(chat.error(error.code, error.message, error.ref))
            return
        except (
            Exception
        ) as exc:  # MembershipChanged: kicked or handed the room meanwhile
            if not isinstance(exc, (StoreUnavailable, MembershipChanged)):
                log.exception("leave failed room=%s", room)
            member.send(
                chat.error(chat.UNAVAILABLE, "not done; send it again", command.ref)
            )
            return
        if room in member.last_ids:  # not taken out by the event meanwhile
            self.leave(member, room)
        member.send(chat.left(room, None if stored is None else stored.id))
        if stored is not None:
            self.publish(stored)

    # -- events, in the room's order ------------------------------------------------------

    def apply(self, event: StoredMessage) -> int:
        """A membership event reached this node's hub in its place: apply it, then tell the room.

        Its target's connections that are replaying the room are left to their replay,
        which reads the event from the store in the same place (``replayed``).
        """
        room, key = event.room, username_key(event.target or "")
        self.evict(room, key)  # what this node saw of the target's membership is past
        for member in self.hub.members(room):
            if not isinstance(member, ChatMember) or username_key(member.user) != key:
                continue
            if room not in member.catching_up:
                self.replayed(member, event)
        return self.hub.publish(room, chat.message(event), event.id)

    def replayed(self, member: ChatMember, event: StoredMessage) -> bool:
        """``event`` reached ``member`` (live or in a replay); False when it took them out of the room."""
        if username_key(event.target or "") != username_key(member.user):
            return True
        if event.kind in REMOVING_EVENTS:
            member.last_ids[event.room] = event.id
            member.send(mod.removed(event))
            self.leave(member, event.room)
            return False
        if event.kind == MUTED:
            member.muted[event.room] = float(event.text)
        elif event.kind == UNMUTED:
            member.muted.pop(event.room, None)
        return True


def refuse_muted(member: ChatMember, room: str, ref: str | None, now: float) -> bool:
    """A muted member's ``say`` is answered ``muted`` (with until when) and not stored."""
    until = member.muted.get(room)
    if until is None:
        return False
    if until <= now:
        del member.muted[room]
        return False
    member.send(mod.muted(until, ref))
    return True
