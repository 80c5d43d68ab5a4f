"""The doors of rooms: ``create``, ``invite``, ``rooms``, ``dm``, and the stored membership a private or direct room's ``join`` needs.

A direct room's name is a digest of its two users' keys (``direct_name``): both
find the same one without asking anyone, and the store's primary key on room
names makes it exactly one room however many ``dm`` race.

Membership lives in the store, shared by every node, so an invitation made on one
node lets the invitee in on any other. A private ``join`` is let into the hub on a
membership this node has seen (``MembershipCache``: found ones only) or read, so a
client that sends ``join`` and then ``say`` at once is answered as before. That
answer may be stale (a kick stored on another node, not yet applied here), so it is
never the last word: once the room's last id is read, the membership is read again
from the store (``ChatHandler._catch_up``), before anything of the room is sent; a
kicked user's connection leaves again there. Events this node applies evict their
target's entry. A "not a member" is read every time, so an invitation elsewhere
counts at once. ``say`` reads none of this (``rawws.chat.access``). An invitation is
a membership event in the room's sequence (``Store.apply_member_event``).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from rawws.chat import wire as chat
from rawws.chat import wire_moderation as mod
from rawws.chat.access import authorize_stored
from rawws.chat.member import ChatMember
from rawws.errors import ChatError
from rawws.store import Store, StoredMessage
from rawws.store.base import (
    BANNED,
    FEED,
    INVITED,
    MEMBER,
    PRIVATE,
    MemberEvent,
    Membership,
    MembershipChanged,
    RoomView,
)
from rawws.store.names import username_key
from rawws.store.outage import StoreHealth, StoreUnavailable

log = logging.getLogger("rawws.chat")


IsAdmin = Callable[[str], Awaitable[bool]]
Refine = Callable[[str, list[RoomView]], Awaitable[list[RoomView]]]


async def _as_stored(user: str, views: list[RoomView]) -> list[RoomView]:
    return views


#: The most rooms one user may own: ``create`` is what a user can repeat to fill the store
#: (a private name is never taken), so it is bounded per user, not only by the frame rate.
MAX_OWNED_ROOMS = 100


async def never_admin(user: str) -> bool:
    """Nobody is a server admin: the default of a ``ChatHandler`` built without a store's flag."""
    return False


def stored_admin(store: Store) -> IsAdmin:
    """Whether a user is a server admin, by the flag ``rawws admin grant`` sets on the server's machine.

    Read from the store each time it is asked (a moderation command or an admin's
    invitation, never a ``say``), so a grant or a revoke holds on every node at once.
    A user the store does not know (an outside identity provider's) is no admin.
    """

    async def is_admin(user: str) -> bool:
        found = await store.get_user(user)
        return found is not None and found.admin

    return is_admin


MAX_CACHED_MEMBERSHIPS = 65_536  # per node; the oldest read goes first
SUFFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
NAME_ATTEMPTS = 4  # 36**8 names per label: a collision twice in a row is already absurd


class MembershipCache:
    """Memberships this node has seen, by (room, user key): those that exist only."""

    def __init__(self, size: int = MAX_CACHED_MEMBERSHIPS) -> None:
        self.size = size
        self._found: OrderedDict[tuple[str, str], Membership] = OrderedDict()

    def get(self, room: str, user: str) -> Membership | None:
        return self._found.get((room, username_key(user)))

    def put(self, user: str, membership: Membership) -> None:
        self._found[(membership.room, username_key(user))] = membership
        while len(self._found) > self.size:
            self._found.popitem(last=False)

    def evict(self, room: str, user: str) -> None:
        self._found.pop((room, username_key(user)), None)

    def evict_room(self, room: str) -> None:
        """Every membership of ``room``: the room was removed (``rawws.chat.removal``)."""
        for key in [key for key in self._found if key[0] == room]:
            del self._found[key]


def direct_name(user: str, other: str) -> str:
    """The one direct room of two users, the same whichever of them asks: a digest of their keys."""
    pair = "\n".join(sorted((username_key(user), username_key(other))))
    digest = hashlib.sha256(pair.encode("utf-8")).hexdigest()
    return chat.DIRECT_PREFIX + digest[: chat.DIRECT_DIGEST_CHARS]


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
        is_admin: IsAdmin = never_admin,
    ) -> None:
        self.store = store
        self.health = health
        self.notify = (
            notify  # (username, text): to that user's connections, on every node
        )
        self.publish = publish  # a stored invitation: to this node's feed and the bus
        self.is_admin = is_admin  # server admins invite to every private room there is
        self.cache = MembershipCache()
        #: ``rooms``' views as this node knows them (markers not yet stored: ``ReadMarkers.refine``).
        self.refine: Refine = _as_stored

    async def membership(
        self, room: str, user: str, cached: bool = False
    ) -> Membership | None:
        """``user``'s stored row of ``room``: read, or (``cached``) as this node last saw it."""
        found = self.cache.get(room, user) if cached else None
        if found is None:
            found = await self.health.call(
                "membership", self.store.membership(room, user)
            )
            if found is not None and found.role != BANNED:
                self.cache.put(user, found)
            else:
                self.cache.evict(room, user)
        return found

    async def admit(
        self, command: chat.Join | chat.Invite, user: str, cached: bool = False
    ) -> Membership | None:
        """``user``'s stored row of the room ``command`` names, if it allows ``command``.

        A private room: a membership (``authorize_stored``). A public room: anyone but
        the banned, who are told so (public rooms are no secret); None when not stored.
        """
        found = await self.membership(command.room, user, cached)
        if chat.has_door(command.room):
            return authorize_stored(command, found)
        if found is not None and found.role == BANNED:
            raise ChatError(
                mod.BANNED, f"you are banned from {command.room}", command.ref
            )
        return found

    async def enter_public(self, room: str, user: str) -> Membership:
        """``user``'s membership of the public room ``room``, begun the first time they join.

        Their first ``join`` stores a ``joined`` event (the room's next id), published like
        a message; they read the room from there on, as a private room's member reads it
        from their invitation. A member stores nothing. Read from the store, not the cache:
        a node with nobody in the room does not apply its events, so what it cached of a
        membership since ended (a kick, a leave for good) may be stale.
        """
        found = await self.admit(chat.Join(room), user)
        if found is not None:
            return found
        made, event = await self.health.call(
            "joining", self.store.join_public(room, user, time.time())
        )
        if made.role == BANNED:  # banned meanwhile
            raise ChatError(mod.BANNED, f"you are banned from {room}")
        self.cache.put(user, made)
        if event is not None:
            self.publish(event)
        return made

    def place(self, member: ChatMember, room: str, found: Membership | None) -> None:
        """What a member's stored row means for its connection: where its reading starts, its mute,
        whether the room is a feed."""
        if found is not None:
            member.floors[room] = found.since_id
        if found is not None and found.muted_until is not None:
            member.muted[room] = found.muted_until
        else:
            member.muted.pop(room, None)
        if (
            found is not None and found.kind == FEED
        ):  # read only here (``rawws.chat.access``)
            member.feeds[room] = None
        else:
            member.feeds.pop(room, None)

    async def run(
        self,
        member: ChatMember,
        command: chat.Create | chat.Invite | chat.RoomsRequest | chat.Dm,
    ) -> None:
        """One door command, answered on ``member``: its answer, or the ``error`` that stopped it."""
        try:
            if isinstance(command, chat.Create):
                await self._create(member, command)
            elif isinstance(command, chat.Invite):
                await self._invite(member, command)
            elif isinstance(command, chat.Dm):
                await self._dm(member, command)
            else:
                views = await self.health.call(
                    "rooms", self.store.visible_rooms(member.user)
                )
                views = await self.refine(member.user, views)
                if (
                    member.rights is not None
                ):  # outside its rights a room is not told of
                    views = [v for v in views if member.rights.may_join(v.room)]
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
        owned = await self.health.call("creating", self.store.owned_rooms(member.user))
        if (
            owned >= MAX_OWNED_ROOMS
        ):  # checked, then made: concurrent creates may pass by a few
            raise ChatError(
                chat.OWNER_LIMIT,
                f"you own {owned} rooms, the most one user may: hand one over first",
                command.ref,
            )
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
                self.cache.put(member.user, made)
                member.send(chat.created(room, made.kind, made.role, command.ref))
                return
        raise ChatError(chat.ROOM_TAKEN, f"{command.room} exists: join it", command.ref)

    async def _invite(self, member: ChatMember, command: chat.Invite) -> None:
        judged_on: tuple[tuple[str, str | None], ...] = ()
        if not await self.is_admin(member.user):
            inviter = await self.admit(command, member.user)
            judged_on = ((member.user, None if inviter is None else inviter.role),)
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
                expect=(*judged_on, (invitee.username, None)),
            )
            try:
                stored = await self.health.call(
                    "inviting", self.store.apply_member_event(event)
                )
            except MembershipChanged:  # kicked meanwhile, or invited by someone else
                raise ChatError(
                    chat.UNAVAILABLE,
                    "the room changed meanwhile; send it again",
                    command.ref,
                ) from None
            self.cache.put(
                invitee.username, Membership(command.room, PRIVATE, MEMBER, stored.id)
            )
        # Answered before the event goes out, as an ack comes before its message.
        member.send(chat.invited(command.room, invitee.username, command.ref))
        if stored is not None:
            self.publish(stored)
        self.notify(invitee.username, chat.invitation(command.room, member.user))

    async def _dm(self, member: ChatMember, command: chat.Dm) -> None:
        if username_key(command.user) == username_key(member.user):
            raise ChatError(
                chat.BAD_FIELD, "a direct room is with someone else", command.ref
            )
        other = await self.health.call("opening", self.store.get_user(command.user))
        if other is None:
            raise ChatError(chat.NO_SUCH_USER, f"no user {command.user}", command.ref)
        room = direct_name(member.user, other.username)
        mine = await self.health.call(
            "opening", self.store.open_direct(room, member.user, other.username)
        )
        self.cache.put(member.user, mine)
        member.send(chat.direct(room, other.username, command.ref))
        self.notify(other.username, chat.direct(room, member.user))

    async def who(self, member: ChatMember, room: str, present: list[str]) -> None:
        """``who`` of a room with stored membership: who is there, and each one's stored role."""
        try:
            stored = await self.health.call("who", self.store.member_roles(room))
        except Exception as exc:
            if not isinstance(exc, StoreUnavailable):
                log.exception("who failed room=%s", room)
            member.send(chat.members(room, present))  # the roles are extra: who is not
            return
        keyed = {username_key(name): role for name, role in stored.items()}
        roles = {u: keyed[username_key(u)] for u in present if username_key(u) in keyed}
        member.send(chat.members(room, present, roles))
