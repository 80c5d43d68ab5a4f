"""The server API's rooms and members: ``rooms_create``, ``rooms_list``, ``rooms_delete``,
``members_add``, ``members_remove``, and ``users_disconnect``.

Every change goes the chat's way, so a connected user cannot tell an application's
doing from a user's: an added member is an ``invited`` event in the room's id
sequence (``Store.apply_member_event``), published through the chat's feed
(``RoomFeed.stored_here``: this node's hub and the bus), with the ``invitation``
notice to the user's connections; a removed member is a ``kicked`` event, so their
connections leave the room on every node at its place in the stream. The events'
``user`` (the actor) is the API key's name, as on what the key publishes.

A room the key does not reach, a direct room and a room that does not exist are one
answer, 404 ``no_such_room`` (``reachable_room``): the key learns nothing of the others.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rawws.apps.calls import ApiCall, ApiError, bad_field, no_such_room
from rawws.apps.keys import ROOMS, USERS
from rawws.apps.routes import ApiRoutes
from rawws.chat import wire
from rawws.chat.app import ChatApp
from rawws.chat.doors import NAME_ATTEMPTS, private_name
from rawws.chat.removal import Removals
from rawws.store.base import (
    BANNED,
    DIRECT,
    FEED,
    INVITED,
    KICKED,
    MEMBER,
    MODERATOR,
    OWNER,
    PRIVATE,
    PUBLIC,
    ROLE_CHANGED,
    MemberEvent,
    MembershipChanged,
    RoomInfo,
)
from rawws.store.names import username_key

if TYPE_CHECKING:  # setup names this module in CALLS
    from rawws.apps.setup import ApiContext

KINDS = (PUBLIC, PRIVATE, FEED)
ROLES = (MEMBER, MODERATOR)
MAX_CREATE_MEMBERS = 100
MAX_LISTED_ROOMS = 1000
MAX_USER_CHARS = (
    64  # longer than any user name: a longer one is a ``bad_field``, not a lookup
)


async def reachable_room(call: ApiCall, app: ChatApp, name: str = "room") -> RoomInfo:
    """The room a call names, read and checked before the call acts (``call.body.done()`` first).

    Outside the key's rooms, a direct room, and no such room: the same 404."""
    room = call.room(name)
    call.body.done()
    info = await app.health.call("api", app.store.room_info(room))
    if info is None or info.kind == DIRECT:
        raise no_such_room(room)
    return info


def _public_syntax(room: str, field: str = "room") -> None:
    if wire.PUBLIC_ROOM_NAME.fullmatch(room) is None:
        raise bad_field(field, f"must be {wire.ROOM_RULE}")


async def _registered(app: ChatApp, names: list[str], field: str) -> list[str]:
    """Each of ``names`` as registered, once each; 404 ``no_such_user`` naming the first unknown."""
    found: dict[str, str] = {}
    for name in names:
        user = await app.health.call("api", app.store.get_user(name))
        if user is None:
            raise ApiError(404, "no_such_user", f"{field}: no user named {name!r}")
        found.setdefault(username_key(user.username), user.username)
    return list(found.values())


def _user_names(field: str, value: Any) -> list[str]:
    if value is None:
        return []
    names = value if isinstance(value, list) else [value]
    for name in names:
        if not isinstance(name, str) or not 0 < len(name) <= MAX_USER_CHARS:
            raise bad_field(field, "each must be a user name")
    return list(names)


class RoomCalls:
    """The handlers, on the chat ``app`` of this node."""

    def __init__(self, app: ChatApp) -> None:
        self.app = app
        chat = app.chat
        self.removals = Removals(
            chat.hub, chat.feed, chat.moderator.leave, chat.doors.cache, chat.stops
        )

    # -- rooms ----------------------------------------------------------------------------

    async def rooms_create(self, call: ApiCall) -> dict[str, Any]:
        room = call.room()
        kind = call.body.text("kind")
        owner_name = call.body.text("owner", required=False, max_chars=MAX_USER_CHARS)
        members = call.body.items("members", required=False)
        call.body.done()
        if kind not in KINDS:
            raise bad_field("kind", "must be 'public', 'private' or 'feed'")
        _public_syntax(room)
        if kind == PRIVATE and len(room) > wire.MAX_PRIVATE_LABEL_CHARS:
            raise bad_field(
                "room",
                f"a private room's label is at most {wire.MAX_PRIVATE_LABEL_CHARS}"
                f" characters (the server adds {wire.PRIVATE_SUFFIX_CHARS + 1})",
            )
        if members is not None and len(members) > MAX_CREATE_MEMBERS:
            raise bad_field("members", f"more than {MAX_CREATE_MEMBERS} items")
        names = _user_names("members", members)
        if names and kind == PUBLIC:
            raise bad_field("members", "a public room's members are whoever joins it")
        owner = None
        if owner_name is not None:
            owner = (await _registered(self.app, [owner_name], "owner"))[0]
        invitees = await _registered(self.app, names, "members")
        name = await self._make(call, room, kind, owner)
        for user in invitees:
            if owner is None or username_key(user) != username_key(owner):
                await self._invite(call, name, kind, user, MEMBER)
        return {"room": name, "kind": kind, "owner": owner}

    async def _make(
        self, call: ApiCall, room: str, kind: str, owner: str | None
    ) -> str:
        app = self.app
        for _ in range(NAME_ATTEMPTS if kind == PRIVATE else 1):
            name = private_name(room) if kind == PRIVATE else room
            if not call.key.reaches(
                name
            ):  # a key for 'team' alone never reaches 'team.x…'
                raise no_such_room(room)
            made = await app.health.call(
                "api", app.store.create_owned_room(name, kind, owner)
            )
            if made:
                return name
        raise ApiError(409, "room_exists", f"a room named {room!r} exists")

    async def rooms_list(self, call: ApiCall) -> dict[str, Any]:
        prefix = call.body.text("prefix", required=False, max_chars=wire.MAX_ROOM_CHARS)
        call.body.done()
        found = await self.app.health.call(
            "api",
            self.app.store.list_rooms(
                call.key.rooms, prefix or "", MAX_LISTED_ROOMS + 1
            ),
        )
        listed = [
            {"room": r.room, "kind": r.kind, "owner": r.owner}
            for r in found[:MAX_LISTED_ROOMS]
        ]
        return {"rooms": listed, "truncated": len(found) > MAX_LISTED_ROOMS}

    async def rooms_delete(self, call: ApiCall) -> dict[str, Any]:
        info = await reachable_room(call, self.app)
        removed = await self.app.health.call(
            "api", self.app.store.remove_room(info.room)
        )
        if not removed:  # removed by another call meanwhile
            raise no_such_room(info.room)
        self.removals.room_deleted_here(info.room, call.key.name)
        return {"room": info.room, "deleted": True}

    # -- members --------------------------------------------------------------------------

    async def members_add(self, call: ApiCall) -> dict[str, Any]:
        room = call.room()
        name = call.body.text("user", max_chars=MAX_USER_CHARS)
        role = call.body.text("role", required=False) or MEMBER
        info = await reachable_room(call, self.app)
        if role not in ROLES:
            raise bad_field("role", "must be 'member' or 'moderator'")
        _doors_only(info)
        user = (await _registered(self.app, [name], "user"))[0]
        await self._invite(call, room, info.kind, user, role)
        return {"room": room, "user": user, "role": role}

    async def members_remove(self, call: ApiCall) -> dict[str, Any]:
        room = call.room()
        name = call.body.text("user", max_chars=MAX_USER_CHARS)
        info = await reachable_room(call, self.app)
        _doors_only(info)
        user = (await _registered(self.app, [name], "user"))[0]
        app = self.app
        found = await app.health.call("api", app.store.membership(room, user))
        if found is None or found.role == BANNED:
            raise ApiError(404, "not_member", f"{user} is not a member of {room!r}")
        if found.role == OWNER:
            raise ApiError(409, "owner", f"{user} owns {room!r}: hand it over first")
        event = MemberEvent(
            room,
            KICKED,
            call.key.name,
            user,
            "",
            time.time(),
            None,
            expect=((user, found.role),),
        )
        await self._store_event(event)
        return {"room": room, "user": user, "removed": True}

    async def _invite(
        self, call: ApiCall, room: str, kind: str, user: str, role: str
    ) -> None:
        """``user`` a member of ``room`` with ``role``: ``invited`` (then ``role`` for a
        moderator) as the chat's ``invite`` and ``role`` store them; nothing when so already."""
        app = self.app
        found = await app.health.call("api", app.store.membership(room, user))
        has = None if found is None else found.role
        if has == BANNED:
            raise ApiError(409, "banned", f"{user} is banned from {room!r}")
        if has == OWNER:
            raise ApiError(409, "owner", f"{user} owns {room!r}")
        now = time.time()
        if has is None:
            invited = MemberEvent(
                room,
                INVITED,
                call.key.name,
                user,
                "",
                now,
                MEMBER,
                expect=((user, None),),
            )
            await self._store_event(invited)
            app.chat.doors.notify(user, wire.invitation(room, call.key.name))
            has = MEMBER
        if has != role:
            changed = MemberEvent(
                room,
                ROLE_CHANGED,
                call.key.name,
                user,
                role,
                now,
                role,
                expect=((user, has),),
            )
            await self._store_event(changed)

    async def _store_event(self, event: MemberEvent) -> None:
        app = self.app
        try:
            stored = await app.health.call("api", app.store.apply_member_event(event))
        except MembershipChanged:
            raise ApiError(
                409, "room_changed", f"{event.room!r} changed meanwhile: call again"
            ) from None
        app.chat.doors.cache.evict(event.room, event.target)
        app.chat.doors.publish(
            stored
        )  # this node's feed and the bus: every node applies it

    # -- users ----------------------------------------------------------------------------

    async def users_disconnect(self, call: ApiCall) -> dict[str, Any]:
        name = call.body.text("user", max_chars=MAX_USER_CHARS)
        call.body.done()
        # Not looked up: a user of an outside identity provider has connections and no row.
        closed = self.removals.disconnect_here(name)
        return {"user": name, "connections": closed}


def _doors_only(info: RoomInfo) -> None:
    """Members are managed where they are a door (private) or a right to read (feed)."""
    if info.kind == PUBLIC:
        raise ApiError(
            409,
            "public_room",
            f"{info.room!r} is public: its members are whoever joins",
        )


def add_calls(routes: ApiRoutes, context: ApiContext) -> None:
    calls = RoomCalls(context.app)
    routes.add("rooms_create", ROOMS, calls.rooms_create)
    routes.add("rooms_list", ROOMS, calls.rooms_list)
    routes.add("rooms_delete", ROOMS, calls.rooms_delete)
    routes.add("members_add", ROOMS, calls.members_add)
    routes.add("members_remove", ROOMS, calls.members_remove)
    routes.add("users_disconnect", USERS, calls.users_disconnect)
