"""Who may do what in the chat: every command is authorized here, in one place, before it runs.

The service asks ``authorize`` for each parsed command and runs it only if no
``ChatError`` comes back; the rule of each command type is in ``RULES``, and a
test holds every command type of ``rawws.chat.wire`` to one, so a new command
cannot skip the check. The first question is the connection's own membership of
the room the command names: ``join`` a room you are not in; ``leave``, ``say``,
``history`` and ``who`` only in a room you joined, so a user learns nothing of a
room's messages or members without joining it first. That answer is local, so the
hot path (``say``) reads no database.

Some commands also need the user's *stored* membership (``STORED_RULES``): joining a
private or direct room, inviting to a private one. The service looks it up (``rawws.chat.doors``) and
asks ``authorize_stored``. A user who is not a member of a private room gets exactly
the answer a name no room has gets (``no_such_room``): nothing tells them it exists.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from rawws.chat import wire
from rawws.errors import ChatError
from rawws.store.base import MODERATOR, OWNER, Membership


class Rule(Enum):
    """What the connection's membership of the named room must be."""

    JOINED = "joined"  # the room's messages, members or membership
    NOT_JOINED = "not joined"  # joining it
    PRIVATE = "a private room"  # membership is managed only where it is a door
    ANYONE = "anyone"  # no room, or one that does not exist yet


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
}

_JOINED, _NOT_JOINED, _PRIVATE, _ANYONE = (
    Rule.JOINED,
    Rule.NOT_JOINED,
    Rule.PRIVATE,
    Rule.ANYONE,
)

STORED_RULES: dict[type[wire.Command], Stored] = {
    wire.Join: Stored.MEMBER,
    wire.Invite: Stored.MANAGER,
}


def authorize(command: wire.Command, joined: Callable[[str], bool]) -> None:
    """Raise the ``ChatError`` the client gets when ``command`` is not allowed; return when it is.

    ``joined(room)``: this connection is in ``room``. The rules are compared with
    module-level names: this runs for every ``say``, and an enum member read off its
    class costs more than the whole check it guards.
    """
    rule = RULES[type(command)]
    if rule is _JOINED:  # say, history, who, leave: the hot path, one local lookup
        if not joined(command.room):  # type: ignore[union-attr]
            raise ChatError(
                wire.NOT_JOINED,
                f"join {command.room} first",  # type: ignore[union-attr]
                getattr(command, "ref", None),
            )
        return
    if rule is _ANYONE:
        return
    room = command.room  # type: ignore[union-attr]
    ref = getattr(command, "ref", None)
    if rule is _NOT_JOINED and joined(room):
        raise ChatError(wire.BAD_ROOM, f"already in {room}", ref)
    if rule is _PRIVATE and wire.is_direct(room):  # by the name: same for made and not
        raise ChatError(wire.BAD_ROOM, "a direct room is for its two users only", ref)
    if rule is _PRIVATE and not wire.is_private(room):
        raise ChatError(wire.BAD_ROOM, "only a private room takes invitations", ref)


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
    if membership is None:
        raise ChatError(wire.NO_SUCH_ROOM, f"no room {room}", ref)
    if rule is Stored.MANAGER and membership.role not in (OWNER, MODERATOR):
        raise ChatError(wire.FORBIDDEN, f"only {rule.value} of {room} may do that", ref)
    return membership
