"""Who may do what in the chat: every command is authorized here, in one place, before it runs.

The service asks ``authorize`` for each parsed command and runs it only if no
``ChatError`` comes back; the rule of each command type is in ``RULES``, and a
test holds every command type of ``rawws.chat.wire`` to one, so a new command
cannot skip the check. Today the one question is membership of the room the
command names: ``join`` a room you are not in; ``leave``, ``say``, ``history``
and ``who`` only in a room you joined, so a user learns nothing of a room's
messages or members without joining it first.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from rawws.chat import wire
from rawws.errors import ChatError


class Rule(Enum):
    """What the connection's membership of the named room must be."""

    JOINED = "joined"  # the room's messages, members or membership
    NOT_JOINED = "not joined"  # joining it


RULES: dict[type[wire.Command], Rule] = {
    wire.Join: Rule.NOT_JOINED,
    wire.Leave: Rule.JOINED,
    wire.Say: Rule.JOINED,
    wire.HistoryRequest: Rule.JOINED,
    wire.Who: Rule.JOINED,
}


def authorize(command: wire.Command, joined: Callable[[str], bool]) -> None:
    """Raise the ``ChatError`` the client gets when ``command`` is not allowed; return when it is.

    ``joined(room)``: this connection is in ``room``.
    """
    rule = RULES[type(command)]
    room = command.room
    ref = getattr(command, "ref", None)
    if rule is Rule.JOINED and not joined(room):
        raise ChatError(wire.NOT_JOINED, f"join {room} first", ref)
    if rule is Rule.NOT_JOINED and joined(room):
        raise ChatError(wire.BAD_ROOM, f"already in {room}", ref)
