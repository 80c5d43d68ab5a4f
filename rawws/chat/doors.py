"""The doors of rooms: ``create``, ``invite``, ``rooms``, and the stored membership a ``join`` needs.

Membership lives in the store, shared by every node, so an invitation made on one
node lets the invitee in on any other. It is read from the store at every ``join``
(twice: ``ChatHandler._join_stored``), never from a node's cache: a kick or a ban made
on another node shrinks it, and a cached "member" would let the kicked user back in.
A join is rare beside a ``say``, which reads none of this: the connection joined, and
that check is local (``rawws.chat.access``). An invitation is a membership event in
the room's sequence (``Store.apply_member_event``), published like a message.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable

from rawws.chat import wire as chat
from rawws.chat import wire_moderation as mod
from rawws.chat.access import authorize_stored
from rawws.chat.member import ChatMember
from rawws.errors import ChatError
from rawws.store import Store, StoredMessage
from rawws.store.base import BANNED, INVITED, MEMBER, PUBLIC, MemberEvent, Membership
from rawws.store.outage import StoreHealth, StoreUnavailable

log = logging.getLogger("rawws.chat")

SUFFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
NAME_ATTEMPTS = 4  # 36**8 names per label: a collision twice in a row is already absurd


def private_name(label: str) -> str:
    """The name of a new private room: the creator's label, '.', random letters and digits."""
    suffix = "".join(
        secrets.choice(SUFFIX_ALPHABET) for _ in range(chat.PRIVATE_SUFFIX_CHARS)
    )
    return f"{label}.{suffix}"


class Doors:
    """Runs ``create``, ``invite`` and ``rooms``, and looks up membership for private joins."""

    def __init__(
        self,
        store: Store,
        health: StoreHealth,
        notify: Callable[[str, str], None],
        publish: Callable[[StoredMessage], None],
        is_admin: Callable[[str], bool] = lambda user: False,
    ) -> None:
        self.store = store
        self.health = health
        self.notify = (
            notify  # (username, text): to that user's connections on this node
        )
        self.publish = publish  # a stored invitation: to this node's feed and the bus
        self.is_admin = is_admin  # server admins invite to every private room there is

    async def membership(self, room: str, user: str) -> Membership | None:
        return await self.health.call("membership", self.store.membership(room, user))

    async def admit(
        self, command: chat.Join | chat.Invite, user: str
    ) -> Membership | None:
        """``user``'s stored row of the room ``command`` names, if it allows ``command``.

        A private room: a membership (``authorize_stored``). A public room: anyone but
        the banned, who are told so (public rooms are no secret); None when not stored.
        """
        found = await self.membership(command.room, user)
        if chat.is_private(command.room):
            return authorize_stored(command, found)
        if found is not None and found.role == BANNED:
            raise ChatError(
                mod.BANNED, f"you are banned from {command.room}", command.ref
            )
        return found

    def place(self, member: ChatMember, room: str, found: Membership | None) -> None:
        """What a member's stored row means for its connection: where its reading starts, its mute."""
        if found is not None and found.kind != PUBLIC:
            member.floors[room] = found.since_id
        if found is not None and found.muted_until is not None:
            member.muted[room] = found.muted_until
        else:
            member.muted.pop(room, None)

    async def run(
        self, member: ChatMember, command: chat.Create | chat.Invite | chat.RoomsRequest
    ) -> None:
        """One door command, answered on ``member``: its answer, or the ``error`` that stopped it."""
        try:
            if isinstance(command, chat.Create):
                await self._create(member, command)
            elif isinstance(command, chat.Invite):
                await self._invite(member, command)
            else:
                views = await self.health.call(
                    "rooms", self.store.visible_rooms(member.user)
                )
                member.send(chat.rooms(views, command.ref))
        except ChatError as error:
            member.send(chat.error(error.code, error.message, error.ref))
        except Exception as exc:
            if not isinstance(exc, StoreUnavailable):
                log.exception("%s failed", type(command).__name__.lower())
            member.send(
                chat.error(chat.UNAVAILABLE, "not done; send it again", command.ref)
            )

    async def _create(self, member: ChatMember, command: chat.Create) -> None:
        for _ in range(NAME_ATTEMPTS if command.kind == "private" else 1):
            room = (
                private_name(command.room)
                if command.kind == "private"
                else command.room
            )
            made = await self.health.call(
                "creating", self.store.create_room(room, command.kind, member.user)
            )
            if made is not None:
                member.send(chat.created(room, made.kind, made.role, command.ref))
                return
        raise ChatError(chat.ROOM_TAKEN, f"{command.room} exists: join it", command.ref)

    async def _invite(self, member: ChatMember, command: chat.Invite) -> None:
        if not self.is_admin(member.user):
            await self.admit(command, member.user)
        elif (
            await self.health.call("inviting", self.store.room_info(command.room))
            is None
        ):
            raise ChatError(chat.NO_SUCH_ROOM, f"no room {command.room}", command.ref)
        invitee = await self.health.call("inviting", self.store.get_user(command.user))
        if invitee is None:
            raise ChatError(chat.NO_SUCH_USER, f"no user {command.user}", command.ref)
        found = await self.membership(command.room, invitee.username)
        if found is not None and found.role == BANNED:
            raise ChatError(
                mod.BANNED, f"{invitee.username} is banned: unban first", command.ref
            )
        stored = None
        if found is None:  # else a member already: an invitation twice is one
            event = MemberEvent(
                command.room,
                INVITED,
                member.user,
                invitee.username,
                "",
                time.time(),
                MEMBER,
            )
            stored = await self.health.call(
                "inviting", self.store.apply_member_event(event)
            )
        # Answered before the event goes out, as an ack comes before its message.
        member.send(chat.invited(command.room, invitee.username, command.ref))
        if stored is not None:
            self.publish(stored)
        self.notify(invitee.username, chat.invitation(command.room, member.user))
