"""What a typed line means in `rawws chat --user`: a ``SayLine`` or a ``/command``. No I/O.

The rules a line must meet (room names, text length) are the server's own, read from
``rawws.chat.wire``, so a line the server would refuse is refused here, before it is sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from rawws.chat import wire
from rawws.chat.wire import MAX_HISTORY_LIMIT, MAX_TEXT_CHARS, ROOM_NAME
from rawws.chat.wire_moderation import MAX_MUTE_S, ROLES

DEFAULT_HISTORY_COUNT = (
    20  # the terminal's /history: a screenful, not the wire's default page
)

ROOM_RULE = f"room names are {wire.ROOM_RULE}"


def valid_room(name: str) -> bool:
    """The server's room-name rule, checked before a join is sent."""
    return ROOM_NAME.fullmatch(name) is not None


def check_text(text: str) -> str | None:
    """Why the server would refuse this text, or ``None``."""
    if not text.strip():
        return "empty message"
    if len(text) > MAX_TEXT_CHARS:
        return f"message too long: {len(text)} characters, at most {MAX_TEXT_CHARS}"
    return None


# -- typed lines -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SayLine:
    text: str


@dataclass(frozen=True, slots=True)
class JoinRoom:
    room: str


@dataclass(frozen=True, slots=True)
class LeaveRoom:
    room: str | None = None  # None: the current room


@dataclass(frozen=True, slots=True)
class PartRoom:
    """``/part [ROOM]``: leave ROOM for good (``leave`` with ``for_good``), ending the membership."""

    room: str | None = None  # None: the current room


@dataclass(frozen=True, slots=True)
class WhoIsHere:
    room: str | None = None


@dataclass(frozen=True, slots=True)
class ShowHistory:
    count: int = DEFAULT_HISTORY_COUNT


@dataclass(frozen=True, slots=True)
class ListRooms:
    pass


@dataclass(frozen=True, slots=True)
class CreateRoom:
    name: str
    kind: str = "public"


@dataclass(frozen=True, slots=True)
class InviteUser:
    room: str
    user: str


@dataclass(frozen=True, slots=True)
class MessageUser:
    """``/msg USER TEXT``: TEXT in the direct room of you and USER (opened with ``dm``)."""

    user: str
    text: str


@dataclass(frozen=True, slots=True)
class Moderate:
    """``/kick``, ``/ban``, ``/unban``, ``/unmute`` ROOM USER; ``/mute`` … SECONDS; ``/role`` … ROLE."""

    kind: str
    room: str
    user: str
    seconds: int | None = None
    role: str | None = None


@dataclass(frozen=True, slots=True)
class EditMessage:
    """``/edit ID TEXT``: your message ``ID`` of the current room now reads TEXT."""

    id: int
    text: str


@dataclass(frozen=True, slots=True)
class DeleteMessage:
    """``/delete ID``: message ``ID`` of the current room is deleted (yours; anyone's for owners, moderators)."""

    id: int


@dataclass(frozen=True, slots=True)
class Help:
    pass


@dataclass(frozen=True, slots=True)
class Quit:
    pass


@dataclass(frozen=True, slots=True)
class BadInput:
    message: str


InputCommand = (
    SayLine
    | JoinRoom
    | LeaveRoom
    | PartRoom
    | WhoIsHere
    | ShowHistory
    | ListRooms
    | CreateRoom
    | InviteUser
    | MessageUser
    | Moderate
    | EditMessage
    | DeleteMessage
    | Help
    | Quit
    | BadInput
)

HELP = (
    "* type a line to say it in the current room; a line starting with / is a command ('//' sends a '/'):",
    "*   /join ROOM     join ROOM (or switch to it) and talk there",
    "*   /leave [ROOM]  leave ROOM (default: the current room)",
    "*   /part [ROOM]   leave ROOM for good (a private room then takes a new invitation)",
    "*   /who [ROOM]    who is in the room now",
    (
        f"*   /history [N]   the last N messages of the current room (default {DEFAULT_HISTORY_COUNT}, "
        f"at most {MAX_HISTORY_LIMIT})"
    ),
    "*   /rooms         the rooms you are in, and every room you may join (kind, your role)",
    "*   /create NAME [private]  make a room (public unless private) and own it",
    "*   /invite ROOM USER       let USER into your private ROOM (from now on)",
    "*   /msg USER TEXT          say TEXT in the direct room of you and USER (joined for you)",
    "*   /edit ID TEXT  your message ID (the #ID before it) of the current room now reads TEXT",
    "*   /delete ID     delete message ID of the current room (yours; owners, moderators: anyone's)",
    "*   /kick ROOM USER, /ban ROOM USER, /unban ROOM USER   (owners, moderators)",
    "*   /mute ROOM USER SECONDS, /unmute ROOM USER          (owners, moderators)",
    "*   /role ROOM USER owner|moderator|member              (the owner)",
    "*   /quit          leave (also Ctrl-D or Ctrl-C)",
)


def parse_input(line: str) -> InputCommand | None:
    """A typed line → what to do; ``None`` for a blank line."""
    if not line.strip():
        return None
    if line.startswith("//"):
        text = line[1:]
    elif line.startswith("/"):
        return _parse_command(line)
    else:
        text = line
    problem = check_text(text)
    return BadInput(problem) if problem else SayLine(text)


def _parse_command(line: str) -> InputCommand:
    name, *args = line[1:].split()
    name = name.lower()
    if name in ("quit", "exit"):
        return Quit() if not args else BadInput(f"/{name} takes no arguments")
    if name in ("help", "?"):
        return Help()
    if name == "rooms":
        return ListRooms() if not args else BadInput("/rooms takes no arguments")
    if name == "join":
        if len(args) != 1:
            return BadInput("usage: /join ROOM")
        return JoinRoom(args[0]) if valid_room(args[0]) else BadInput(ROOM_RULE)
    if name in ("leave", "part", "who"):
        if len(args) > 1:
            return BadInput(f"usage: /{name} [ROOM]")
        room = args[0] if args else None
        if room is not None and not valid_room(room):
            return BadInput(ROOM_RULE)
        if name == "part":
            return PartRoom(room)
        return LeaveRoom(room) if name == "leave" else WhoIsHere(room)
    if name == "create":
        return _create(args)
    if name == "msg":
        return _msg(line)
    if name == "invite":
        if len(args) != 2 or len(args[1]) > wire.MAX_USER_CHARS:
            return BadInput("usage: /invite ROOM USER")
        if not wire.is_private(args[0]) or not valid_room(args[0]):
            return BadInput(
                "only a private room takes invitations (its name has a '.')"
            )
        return InviteUser(args[0], args[1])
    if name in MODERATION_USAGE:
        return _moderate(name, args)
    if name in ("edit", "delete"):
        return _change(name, line)
    if name == "history":
        if not args:
            return ShowHistory()
        if (
            len(args) == 1
            and args[0].isdigit()
            and 1 <= int(args[0]) <= MAX_HISTORY_LIMIT
        ):
            return ShowHistory(int(args[0]))
        return BadInput(f"usage: /history [N], N from 1 to {MAX_HISTORY_LIMIT}")
    return BadInput(f"unknown command /{name} (/help lists them)")


def _create(args: list[str]) -> InputCommand:
    if not 1 <= len(args) <= 2 or (len(args) == 2 and args[1] not in wire.ROOM_KINDS):
        return BadInput("usage: /create NAME [private]")
    kind = args[1] if len(args) == 2 else "public"
    if wire.PUBLIC_ROOM_NAME.fullmatch(args[0]) is None:
        return BadInput("a new room's name is 1-32 characters of a-z, 0-9, '_' and '-'")
    if kind == "private" and len(args[0]) > wire.MAX_PRIVATE_LABEL_CHARS:
        return BadInput(
            f"a private room's name is at most {wire.MAX_PRIVATE_LABEL_CHARS} characters"
            " (the server adds '.' and 8 more)"
        )
    return CreateRoom(args[0], kind)


def _msg(line: str) -> InputCommand:
    parts = line[1:].split(maxsplit=2)
    if len(parts) != 3 or len(parts[1]) > wire.MAX_USER_CHARS:
        return BadInput("usage: /msg USER TEXT")
    problem = check_text(parts[2])
    return BadInput(problem) if problem else MessageUser(parts[1], parts[2])


def _change(name: str, line: str) -> InputCommand:
    """``/edit ID TEXT`` or ``/delete ID``; ID as shown before a message (``#12``) or bare."""
    parts = line[1:].split(maxsplit=2)
    usage = BadInput("usage: /edit ID TEXT" if name == "edit" else "usage: /delete ID")
    if len(parts) != (3 if name == "edit" else 2):
        return usage
    digits = parts[1].removeprefix("#")
    if not digits.isascii() or not digits.isdigit() or int(digits) < 1:
        return usage
    if name == "delete":
        return DeleteMessage(int(digits))
    problem = check_text(parts[2])
    return BadInput(problem) if problem else EditMessage(int(digits), parts[2])


MODERATION_USAGE = {
    "kick": "/kick ROOM USER",
    "ban": "/ban ROOM USER",
    "unban": "/unban ROOM USER",
    "unmute": "/unmute ROOM USER",
    "mute": "/mute ROOM USER SECONDS",
    "role": "/role ROOM USER owner|moderator|member",
}


def _moderate(name: str, args: list[str]) -> InputCommand:
    usage = f"usage: {MODERATION_USAGE[name]}"
    wants = 3 if name in ("mute", "role") else 2
    if len(args) != wants or len(args[1]) > wire.MAX_USER_CHARS:
        return BadInput(usage)
    if not valid_room(args[0]):
        return BadInput(ROOM_RULE)
    if name == "mute":
        if not args[2].isdigit() or not 1 <= int(args[2]) <= MAX_MUTE_S:
            return BadInput(f"{usage}: SECONDS from 1 to {MAX_MUTE_S}")
        return Moderate(name, args[0], args[1], seconds=int(args[2]))
    if name == "role":
        if args[2] not in ROLES:
            return BadInput(f"{usage}: no role {args[2]!r}")
        return Moderate(name, args[0], args[1], role=args[2])
    return Moderate(name, args[0], args[1])
