"""Who may do what in the chat: every command is authorized here, in one place, before it runs.

The service asks ``authorize`` for each parsed command and runs it only if no
``ChatError`` comes back; the rule of each command type is in ``RULES``, and a
test holds every command type of ``rawws.chat.wire`` to one, so a new command
cannot skip the check. The first question is the connection's own membership of
the room the command names: ``join`` a room you are not in; ``leave``, ``say``,
``history``, ``who``, ``read`` and ``typing`` only in a room you joined, so a user learns nothing of a
room's messages or members without joining it first. That answer is local, so the
hot path (``say``) reads no database.

Some commands also need the user's *stored* membership (``STORED_RULES``): joining a
private or direct room, inviting to a private one. The service looks it up (``rawws.chat.doors``) and
asks ``authorize_stored``. A user who is not a member of a private room gets exactly
the answer a name no room has gets (``no_such_room``): nothing tells them it exists.

Two limits come from the connection's own state, so they too are decided here with no
I/O: a *feed* room (stored kind ``feed``, learnt at the join: ``ChatMember.feeds``) is
read only (``say``, ``edit``, ``delete`` and ``typing`` there are ``forbidden``: only its
application publishes), and an outside token's room rights (``ChatMember.rights``,
``rawws.accounts.room_rights``) narrow which rooms the user may join (outside them: the
answer of a room never made) and publish in. The common connection has neither, and its
``say`` pays two falsy checks for them.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING

from rawws.chat import wire, wire_reads
from rawws.chat import wire_edits as edits
from rawws.chat import wire_moderation as mod
from rawws.chat.wire_retention import RetentionChange
from rawws.errors import ChatError
from rawws.store.base import (
    BANNED,
    BANNED_EVENT,
    KICKED,
    LEFT,
    MEMBER,
    MODERATOR,
    MUTED,
    OWNER,
    ROLE_CHANGED,
    UNBANNED,
    UNMUTED,
    MemberEvent,
    Membership,
    RoomInfo,
)
from rawws.store.names import username_key

if TYPE_CHECKING:
    from rawws.chat.member import ChatMember


class Rule(Enum):
    """What the connection's membership of the named room must be."""

    JOINED = "joined"  # the room's messages, members or membership
    NOT_JOINED = "not joined"  # joining it
    PRIVATE = "a private room"  # membership is managed only where it is a door
    ANYONE = "anyone"  # no room, or one that does not exist yet
    MODERATE = "its owner, a moderator or an admin"  # ``authorize_actor``, then ``authorize_moderation``


class Stored(Enum):
    """What the user's stored membership of the named room must be (after ``Rule``)."""

    MEMBER = "a member"  # of a private room; a public room is open to everyone
    MANAGER = "its owner or a moderator"


RULES: dict[type[wire.Command], Rule] = {
    wire.Join: Rule.NOT_JOINED,
    wire.Leave: Rule.JOINED,
    wire.Say: Rule.JOINED,
    wire.HistoryRequest: Rule.JOINED,
    wire.Who: Rule.JOINED,
    wire.Create: Rule.ANYONE,  # the name is checked by the store: made once
    wire.Invite: Rule.PRIVATE,
    wire.RoomsRequest: Rule.ANYONE,  # each user sees only what they may (``visible_rooms``)
    wire.Dm: Rule.ANYONE,  # names a user, not a room: the pair's room is found or made
    wire_reads.Read: Rule.JOINED,  # and never past what the connection was sent
    wire_reads.Typing: Rule.JOINED,  # and not muted (``rawws.chat.typing_relay``)
    # Stored roles decide these (an admin need not have joined): ``authorize_actor``.
    mod.Kick: Rule.MODERATE,
    mod.Ban: Rule.MODERATE,
    mod.Unban: Rule.MODERATE,
    mod.Mute: Rule.MODERATE,
    mod.Unmute: Rule.MODERATE,
    mod.RoleChange: Rule.MODERATE,
    # The room's stored owner (or an admin) decides: ``authorize_retention``.
    RetentionChange: Rule.ANYONE,
    # In a room joined; whose message it is, and the stored role a deletion of another's
    # needs, are read by the store under the room's lock (``Store.change_message``).
    edits.Edit: Rule.JOINED,
    edits.Delete: Rule.JOINED,
}

_JOINED, _NOT_JOINED, _PRIVATE, _ANYONE = (
    Rule.JOINED,
    Rule.NOT_JOINED,
    Rule.PRIVATE,
    Rule.ANYONE,
)

#: What a feed's members may not do there, nor anyone outside their token's ``publish`` (but
#: ``delete``: taking one's own words back is no publishing). ``read`` markers stay theirs.
PUBLISHING: frozenset[type[wire.Command]] = frozenset(
    {wire.Say, edits.Edit, edits.Delete, wire_reads.Typing}
)
FEED_REFUSAL = "{room} is a feed: only its application posts there"
RIGHTS_REFUSAL = "your token does not let you post in {room}"

STORED_RULES: dict[type[wire.Command], Stored] = {
    wire.Join: Stored.MEMBER,
    wire.Invite: Stored.MANAGER,
}


def authorize(
    command: wire.Command,
    joined: Callable[[str], bool],
    member: ChatMember | None = None,
) -> None:
    """Raise the ``ChatError`` the client gets when ``command`` is not allowed; return when it is.

    ``joined(room)``: this connection is in ``room``; ``member``: its feeds and room
    rights (None: neither). The rules are compared with module-level names: this runs
    for every ``say``, and an enum member read off its class costs more than the whole
    check it guards.
    """
    rule = RULES[type(command)]
    if rule is _JOINED:  # say, history, who, leave: the hot path, one local lookup
        if not joined(command.room):  # type: ignore[union-attr]
            raise ChatError(
                wire.NOT_JOINED,
                f"join {command.room} first",  # type: ignore[union-attr]
                getattr(command, "ref", None),
            )
        if member is not None and (member.feeds or member.rights is not None):
            authorize_publishing(command, member)
        return
    if rule is _ANYONE:
        return
    room = command.room  # type: ignore[union-attr]
    ref = getattr(command, "ref", None)
    rights = member.rights if member is not None else None
    if rule is _NOT_JOINED and rights is not None and not rights.may_join(room):
        raise ChatError(wire.NO_SUCH_ROOM, f"no room {room}", ref)  # as if never made
    if rule is Rule.MODERATE:
        if wire.is_direct(room):  # by the name: the same answer for made and not
            raise ChatError(
                wire.BAD_ROOM,
                "a direct room is its two users': nobody moderates it",
                ref,
            )
        return
    if rule is _NOT_JOINED and joined(room):
        raise ChatError(wire.BAD_ROOM, f"already in {room}", ref)
    if rule is _PRIVATE and wire.is_direct(room):  # by the name: same for made and not
        raise ChatError(wire.BAD_ROOM, "a direct room is for its two users only", ref)
    if rule is _PRIVATE and not wire.is_private(room):
        raise ChatError(wire.BAD_ROOM, "only a private room takes invitations", ref)


def authorize_publishing(command: wire.Command, member: ChatMember) -> None:
    """A joined room's ``command`` that publishes (``PUBLISHING``): not in a feed, and not
    outside the token's ``publish`` rights. Anything else passes."""
    if type(command) not in PUBLISHING:
        return
    room: str = command.room  # type: ignore[union-attr]
    ref = getattr(command, "ref", None)
    if room in member.feeds:
        raise ChatError(wire.FORBIDDEN, FEED_REFUSAL.format(room=room), ref)
    rights = member.rights
    publishes = type(command) is not edits.Delete
    if publishes and rights is not None and not rights.may_publish(room):
        raise ChatError(wire.FORBIDDEN, RIGHTS_REFUSAL.format(room=room), ref)


def needs_membership(command: wire.Command) -> bool:
    """Whether ``authorize_stored`` must see the user's stored membership before ``command`` runs."""
    return type(command) in STORED_RULES and wire.has_door(getattr(command, "room", ""))


def authorize_stored(
    command: wire.Command, membership: Membership | None
) -> Membership:
    """After ``authorize``: the user's stored ``membership`` of the room must allow ``command``.

    Not a member of a private room reads as no such room, whatever the room is; a
    member who may not do it is told so (they know the room already).
    """
    rule = STORED_RULES[type(command)]
    room = getattr(command, "room", "")
    ref = getattr(command, "ref", None)
    if membership is None or membership.role == BANNED:
        raise ChatError(wire.NO_SUCH_ROOM, f"no room {room}", ref)
    if rule is Stored.MANAGER and membership.role not in (OWNER, MODERATOR):
        raise ChatError(wire.FORBIDDEN, f"only {rule.value} of {room} may do that", ref)
    return membership


# -- moderation ---------------------------------------------------------------------------

ADMIN = "admin"  # not a stored role: the server's admins, who moderate every room
_MANAGERS = (OWNER, MODERATOR, ADMIN)
_IN_ROOM = (OWNER, MODERATOR, MEMBER)


def actor_role(
    room: str, info: RoomInfo | None, actor: Membership | None, admin: bool
) -> str | None:
    """The role a moderation command is judged by: ``ADMIN``, the stored role, or None."""
    if admin:
        return ADMIN
    if actor is None or actor.role == BANNED:
        return None
    return actor.role


def authorize_actor(
    command: mod.Moderation, info: RoomInfo | None, role: str | None
) -> None:
    """May a user of ``role`` moderate the room at all? A private room's outsider hears of no room."""
    room, ref = command.room, command.ref
    if wire.has_door(room) and (info is None or role is None):
        raise ChatError(wire.NO_SUCH_ROOM, f"no room {room}", ref)
    if role not in _MANAGERS:
        raise ChatError(
            wire.FORBIDDEN, f"only {Rule.MODERATE.value} of {room} may do that", ref
        )
    if isinstance(command, mod.RoleChange) and role == MODERATOR:
        raise ChatError(
            wire.FORBIDDEN, f"only the owner of {room} gives or takes roles", ref
        )


def authorize_moderation(
    command: mod.Moderation,
    info: RoomInfo | None,
    role: str,
    actor: str,
    target_name: str,
    target: Membership | None,
    now: float,
) -> MemberEvent:
    """After ``authorize_actor``: the event ``command`` stores, or the ``ChatError`` why not.

    The rules (docs/protocol.md has them as a table): nobody acts on themselves or on
    the owner (the owner hands ownership over first); a moderator acts on members only;
    kick, mute and role need a member of a private room; nothing that changes nothing.
    """
    room, ref = command.room, command.ref
    has = target.role if target is not None else None
    if username_key(target_name) == username_key(actor):
        raise ChatError(mod.BAD_TARGET, "not on yourself", ref)
    if has == OWNER:
        raise ChatError(mod.BAD_TARGET, f"{target_name} owns {room}", ref)
    if role == MODERATOR and has == MODERATOR:
        raise ChatError(wire.FORBIDDEN, "a moderator acts on members only", ref)
    muted_until = target.muted_until if target is not None else None

    def event(
        kind: str, after: str | None, detail: str = "", **more: object
    ) -> MemberEvent:
        until = more.get("muted_until", muted_until)
        assert until is None or isinstance(until, float)
        demote = more.get("demote")
        assert demote is None or isinstance(demote, str)
        return MemberEvent(
            room, kind, actor, target_name, detail, now, after, until, demote
        )

    if isinstance(command, mod.Unban):
        if has != BANNED:
            raise ChatError(mod.NOT_BANNED, f"{target_name} is not banned", ref)
        return event(UNBANNED, None)
    if has == BANNED:
        raise ChatError(mod.NOT_MEMBER, f"{target_name} is banned from {room}", ref)
    if isinstance(command, mod.Ban):
        return event(BANNED_EVENT, BANNED, muted_until=None)
    if has is None and wire.has_door(room):
        raise ChatError(mod.NOT_MEMBER, f"{target_name} is not in {room}", ref)
    if isinstance(command, mod.Kick):
        return event(KICKED, None, muted_until=None)
    if isinstance(command, mod.Mute):
        until = now + command.seconds
        return event(MUTED, has or MEMBER, repr(until), muted_until=until)
    if isinstance(command, mod.Unmute):
        if muted_until is None or muted_until <= now:
            raise ChatError(mod.BAD_TARGET, f"{target_name} is not muted", ref)
        return event(UNMUTED, has or MEMBER, muted_until=None)
    assert isinstance(command, mod.RoleChange)
    if (has or MEMBER) == command.role:
        raise ChatError(mod.BAD_TARGET, f"{target_name} is a {command.role}", ref)
    demote = info.owner if info is not None and command.role == OWNER else None
    return event(ROLE_CHANGED, command.role, command.role, demote=demote)


def authorize_leaving(
    command: wire.Leave, user: str, found: Membership | None, now: float
) -> MemberEvent | None:
    """``leave`` with ``for_good``: the ``left`` event it stores, None when there is no
    membership to end (not joined since version 8, or banned), or the ``ChatError`` why not:
    a direct room is the pair's for good, and an owner hands the room over first."""
    if wire.is_direct(command.room):
        raise ChatError(
            wire.BAD_ROOM, "a direct room cannot be left for good", command.ref
        )
    if found is None or found.role == BANNED:
        return None
    if found.role == OWNER:
        raise ChatError(
            wire.FORBIDDEN,
            f"you own {command.room}: hand it over first (role … owner)",
            command.ref,
        )
    judged_on = ((user, found.role),)
    return MemberEvent(command.room, LEFT, user, user, "", now, None, expect=judged_on)


def authorize_retention(
    command: RetentionChange,
    found: Membership | None,
    admin: bool,
    server_age_s: float,
    server_messages: int,
) -> None:
    """A room's own retention: set by its owner (or an admin), never longer than the server's.

    Not in a direct room (its two users have no owner between them). A private room's
    outsider hears of no room, as for every other command.
    """
    room, ref = command.room, command.ref
    if wire.is_direct(room):
        raise ChatError(wire.BAD_ROOM, "a direct room keeps what the server keeps", ref)
    owner = found is not None and found.role == OWNER
    if wire.is_private(room) and found is None and not admin:
        raise ChatError(wire.NO_SUCH_ROOM, f"no room {room}", ref)
    if not owner and not admin:
        raise ChatError(wire.FORBIDDEN, f"only the owner of {room} sets that", ref)
    for asked, most, what in (
        (command.max_age_s, server_age_s, "max_age"),
        (command.max_messages, server_messages, "max_messages"),
    ):
        if most and asked > most:
            raise ChatError(
                wire.BAD_FIELD, f"{what} may be at most the server's {most:g}", ref
            )
