"""The chat wire protocol: one JSON object per text frame, its ``"type"`` naming it. No I/O.

Client → server: ``join {room, since?, ref?}``, ``leave {room}``, ``say {room, text, ref?}``,
``history {room, before?, limit?}``, ``who {room}``, ``create {room, kind, ref?}``,
``invite {room, user, ref?}``, ``rooms {ref?}``, ``dm {user, ref?}``, ``kick``/``ban``/``unban``/``unmute
{room, user, ref?}``, ``mute {room, user, seconds, ref?}``, ``role {room, user, role, ref?}``,
``read {room, id}``, ``typing {room}`` (``rawws.chat.wire_reads``, with their frames).

Server → client: ``welcome {user, rooms, limits}``, ``joined {room, users, last_id, last_read, unread}``,
``left {room}``, ``message {room, id, user, text, ts}``, ``ack {ref, room, id}``,
``presence {room, user, event}``, ``members {room, users}``,
``history {room, messages}``, ``error {code, message, ref?}``, ``created {room, kind, role, ref?}``,
``invited {room, user, ref?}``, ``invitation {room, by}``, ``rooms {rooms, ref?}``,
``direct {room, user, ref?}``,
``member {room, id, event, user, by, ts, role?, until?}`` (a membership event in the room's
sequence), ``removed {room, id, reason, by}``, ``moderated {ref, room, user, event, id}``.

Everything a client sends is checked here; a bad frame becomes a ``ChatError``
that the connection answers with an ``error`` frame and stays open.

This module is the one home of the protocol's limits and rules (room names,
text length, refs, history pages): the chat clients import them, and the
``welcome`` hands them, with the server's per-connection limits, to every
client that cannot import them (the browser page), so no client keeps a copy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rawws.chat import wire_edits as edits
from rawws.chat import wire_reads as reads  # parses read and typing
from rawws.chat.room_names import (  # re-exported: the protocol's names of rooms
    DIRECT_DIGEST_CHARS as DIRECT_DIGEST_CHARS,
)
from rawws.chat.room_names import DIRECT_PREFIX as DIRECT_PREFIX
from rawws.chat.room_names import DIRECT_ROOM_NAME as DIRECT_ROOM_NAME
from rawws.chat.room_names import MAX_PRIVATE_LABEL_CHARS as MAX_PRIVATE_LABEL_CHARS
from rawws.chat.room_names import MAX_ROOM_CHARS as MAX_ROOM_CHARS
from rawws.chat.room_names import PRIVATE_ROOM_NAME as PRIVATE_ROOM_NAME
from rawws.chat.room_names import PRIVATE_SUFFIX_CHARS as PRIVATE_SUFFIX_CHARS
from rawws.chat.room_names import PUBLIC_ROOM_NAME as PUBLIC_ROOM_NAME
from rawws.chat.room_names import ROOM_NAME as ROOM_NAME
from rawws.chat.room_names import ROOM_RULE as ROOM_RULE
from rawws.chat.room_names import has_door as has_door
from rawws.chat.room_names import is_direct as is_direct
from rawws.chat.room_names import is_private as is_private
from rawws.chat.wire_edits import NOT_FOUND as NOT_FOUND
from rawws.chat.wire_moderation import (
    BAD_ROLE,
    MAX_MUTE_S,
    Ban,
    Kick,
    Mute,
    RoleChange,
    Unban,
    Unmute,
)
from rawws.chat.wire_retention import RetentionChange, parse_retention
from rawws.errors import ChatError
from rawws.store.base import ROLES, SAY, RoomView
from rawws.store.base import (
    StoredMessage as StoredMessage,
)  # re-exported: what the protocol sends

DEFAULT_ROOM = "lobby"
ROOM_KINDS = ("public", "private")  # what ``create`` makes ('direct' comes with ``dm``)
MAX_USER_CHARS = 32
MAX_TEXT_CHARS = 4000
#: The largest frame a client needs: a `say` of MAX_TEXT_CHARS, each character JSON-escaped as a
#: surrogate pair (12 bytes), and room to spare. /ws closes a bigger one with 1009 as soon as this
#: much is inflated, before it costs the rest (issue 20: frames of 1 KiB inflating to 1 MiB).
MAX_FRAME_BYTES = 64 * 1024
MAX_REF_CHARS = 64
DEFAULT_HISTORY_LIMIT = 50
MAX_HISTORY_LIMIT = 200
MAX_ID = (
    2**63 - 1
)  # ids are SQL BIGINTs: a larger `since` or `before` cannot be a real id

# error codes
BAD_JSON = "bad_json"
BAD_TYPE = "bad_type"
BAD_FIELD = "bad_field"
BAD_ROOM = "bad_room"
TOO_LONG = "too_long"
NOT_JOINED = "not_joined"
TOO_MANY_ROOMS = "too_many_rooms"
RATE_LIMITED = "rate_limited"
BINARY = "binary_not_supported"
NO_SUCH_ROOM = "no_such_room"
NO_SUCH_USER = "no_such_user"
ROOM_TAKEN = "room_taken"
OWNER_LIMIT = "owner_limit"  # ``create`` by a user who owns ``MAX_OWNED_ROOMS`` rooms
FORBIDDEN = "forbidden"
UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Join:
    room: str
    since: int | None = None
    ref: str | None = (
        None  # comes back on an error about this join (the page sends "join:ROOM")
    )


@dataclass(frozen=True, slots=True)
class Leave:
    room: str
    for_good: bool = False  # also end the membership (a stored ``left`` event)
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Say:
    room: str
    text: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    room: str
    before: int | None = None
    limit: int = DEFAULT_HISTORY_LIMIT


@dataclass(frozen=True, slots=True)
class Who:
    room: str


@dataclass(frozen=True, slots=True)
class Create:
    room: str  # public: the name; private: the label the server adds a suffix to
    kind: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Invite:
    room: str
    user: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class RoomsRequest:
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Dm:
    user: str  # the other user of the pair
    ref: str | None = None


Command = (
    Join
    | Leave
    | Say
    | HistoryRequest
    | Who
    | Create
    | Invite
    | RoomsRequest
    | Dm
    | Kick
    | Ban
    | Unban
    | Mute
    | Unmute
    | RoleChange
    | RetentionChange
    | edits.MessageChange  # edit, delete
    | reads.Command
)
_TARGETED: dict[str, type[Kick | Ban | Unban | Unmute]] = {
    "kick": Kick,
    "ban": Ban,
    "unban": Unban,
    "unmute": Unmute,
}


def parse_command(data: str | bytes) -> Command:
    """One client frame → a command, or ``ChatError`` saying exactly what is wrong."""
    if isinstance(data, bytes):
        raise ChatError(BINARY, "send JSON text frames")
    try:
        frame = json.loads(data)
    except (
        ValueError,
        RecursionError,
    ):  # also an integer of > 4300 digits, or nesting too deep
        raise ChatError(BAD_JSON, "frame is not valid JSON") from None
    if not isinstance(frame, dict):
        raise ChatError(BAD_JSON, "frame must be a JSON object")
    ref = frame.get("ref")
    if ref is not None and (
        not isinstance(ref, str) or len(ref) > MAX_REF_CHARS or not _encodable(ref)
    ):
        raise ChatError(
            BAD_FIELD, f"ref must be a string of at most {MAX_REF_CHARS} characters"
        )
    kind = frame.get("type")
    try:
        if kind == "say":
            return Say(_room(frame), _text(frame), ref)
        if kind == "join":
            return Join(_room(frame), _optional_int(frame, "since", minimum=0), ref)
        if kind == "leave":
            for_good = frame.get("for_good", False)
            if type(for_good) is not bool:
                raise ChatError(BAD_FIELD, "for_good must be true or false")
            return Leave(_room(frame), for_good, ref)
        if kind == "history":
            limit = _optional_int(frame, "limit", minimum=1)
            return HistoryRequest(
                _room(frame),
                _optional_int(frame, "before", minimum=1),
                min(limit, MAX_HISTORY_LIMIT)
                if limit is not None
                else DEFAULT_HISTORY_LIMIT,
            )
        if kind == "who":
            return Who(_room(frame))
        if kind == "create":
            return _create(frame, ref)
        if kind == "invite":
            return Invite(_room(frame), _user(frame), ref)
        if kind == "rooms":
            return RoomsRequest(ref)
        if kind == "dm":
            return Dm(_user(frame), ref)
        if isinstance(kind, str) and kind in _TARGETED:
            return _TARGETED[kind](_room(frame), _user(frame), ref)
        if kind == "mute":
            seconds = _optional_int(frame, "seconds", minimum=1)
            if seconds is None or seconds > MAX_MUTE_S:
                raise ChatError(
                    BAD_FIELD, f"seconds must be an integer from 1 to {MAX_MUTE_S}"
                )
            return Mute(_room(frame), _user(frame), seconds, ref)
        if kind == "role":
            return RoleChange(_room(frame), _user(frame), _role(frame), ref)
        if kind == "retention":
            return parse_retention(frame, ref, _room)
        if kind in ("edit", "delete"):
            room, message_id = _room(frame), _optional_int(frame, "id", minimum=1)
            if message_id is None:
                raise ChatError(BAD_FIELD, "id must be the id of a message")
            text = _text(frame) if kind == "edit" else None
            return edits.message_change(room, message_id, text, ref)
        if isinstance(kind, str) and kind in reads.KINDS:
            read_id = _optional_int(frame, "id", minimum=1) if kind == "read" else None
            return reads.parse(kind, _room(frame), read_id, ref)
    except ChatError as error:
        error.ref = ref
        raise
    raise ChatError(
        BAD_TYPE,
        f"unknown type {kind[:32]!r}" if isinstance(kind, str) else "type is required",
        ref,
    )


def _room(frame: dict[str, Any]) -> str:
    room = frame.get("room")
    if not isinstance(room, str) or ROOM_NAME.fullmatch(room) is None:
        raise ChatError(BAD_ROOM, f"room must be {ROOM_RULE}")
    return room


def _role(frame: dict[str, Any]) -> str:
    role = frame.get("role")
    if role not in ROLES:
        raise ChatError(BAD_ROLE, f"role must be one of {', '.join(ROLES)}")
    assert isinstance(role, str)
    return role


def _create(frame: dict[str, Any], ref: str | None) -> Create:
    kind = frame.get("kind")
    if kind not in ROOM_KINDS:
        raise ChatError(BAD_FIELD, "kind must be 'public' or 'private'")
    room = frame.get("room")
    if isinstance(room, str) and is_direct(room):
        raise ChatError(
            BAD_ROOM,
            f"a name starting with '{DIRECT_PREFIX}' is a direct room's: open one with dm",
        )
    if not isinstance(room, str) or PUBLIC_ROOM_NAME.fullmatch(room) is None:
        raise ChatError(
            BAD_ROOM,
            f"room must be 1-{MAX_ROOM_CHARS} characters of a-z, 0-9, '_' and '-', starting with a letter or digit",
        )
    if kind == "private" and len(room) > MAX_PRIVATE_LABEL_CHARS:
        raise ChatError(
            BAD_ROOM,
            f"a private room's name is at most {MAX_PRIVATE_LABEL_CHARS} characters"
            f" (the server adds {PRIVATE_SUFFIX_CHARS + 1})",
        )
    return Create(room, kind, ref)


def _user(frame: dict[str, Any]) -> str:
    user = frame.get("user")
    if (
        not isinstance(user, str)
        or not 1 <= len(user) <= MAX_USER_CHARS
        or not user.isprintable()
        or not _encodable(user)
    ):
        raise ChatError(
            BAD_FIELD, f"user must be a name of 1-{MAX_USER_CHARS} characters"
        )
    return user


def _text(frame: dict[str, Any]) -> str:
    text = frame.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ChatError(BAD_FIELD, "text must be a non-empty string")
    if len(text) > MAX_TEXT_CHARS:
        raise ChatError(TOO_LONG, f"text is longer than {MAX_TEXT_CHARS} characters")
    # A JSON escape can make a lone surrogate, which no UTF-8 frame or database can hold;
    # PostgreSQL text cannot hold NUL. Either would fail the whole stored batch.
    if "\x00" in text or not _encodable(text):
        raise ChatError(BAD_FIELD, "text must be valid Unicode without NUL characters")
    return text


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _optional_int(frame: dict[str, Any], name: str, *, minimum: int) -> int | None:
    value = frame.get(name)
    if value is None:
        return None
    if type(value) is not int or not minimum <= value <= MAX_ID:
        raise ChatError(
            BAD_FIELD, f"{name} must be an integer from {minimum} to {MAX_ID}"
        )
    return value


# -- server frames -------------------------------------------------------------------


def dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def limits(
    max_rooms_per_connection: int, messages_per_s: float, message_burst: int
) -> dict[str, object]:
    """The ``limits`` of a ``welcome``: this protocol's own, and the server's per connection."""
    return {
        "room_name": ROOM_NAME.pattern,
        "room_rule": ROOM_RULE,
        "max_text_chars": MAX_TEXT_CHARS,
        "max_ref_chars": MAX_REF_CHARS,
        "default_history_limit": DEFAULT_HISTORY_LIMIT,
        "max_history_limit": MAX_HISTORY_LIMIT,
        "max_rooms_per_connection": max_rooms_per_connection,
        "messages_per_s": messages_per_s,
        "message_burst": message_burst,
    }


def welcome(user: str, rooms: list[str], limits: dict[str, object]) -> str:
    return dumps({"type": "welcome", "user": user, "rooms": rooms, "limits": limits})


def joined(
    room: str, users: list[str], last_id: int, read: int, unread: int, kind: str
) -> str:
    """``read``: the user's marker in force; ``unread``: messages of others after it; ``kind``: stored."""
    fields = {"room": room, "kind": kind, "users": users, "last_id": last_id}
    return dumps({"type": "joined", **fields, "last_read": read, "unread": unread})


def left(room: str, event_id: int | None = None) -> str:
    """The answer to ``leave``; with ``id``, the stored ``left`` event that ended the membership."""
    if event_id is None:
        return dumps({"type": "left", "room": room})
    return dumps({"type": "left", "room": room, "id": event_id})


def ack(ref: str | None, room: str, message_id: int) -> str:
    return dumps({"type": "ack", "ref": ref, "room": room, "id": message_id})


def presence(room: str, user: str, event: str) -> str:
    return dumps({"type": "presence", "room": room, "user": user, "event": event})


def members(room: str, users: list[str], roles: dict[str, str] | None = None) -> str:
    """``roles`` (user → role) only for a room with stored membership: a public room has none."""
    if roles is None:
        return dumps({"type": "members", "room": room, "users": users})
    return dumps({"type": "members", "room": room, "users": users, "roles": roles})


def history(room: str, messages: list[StoredMessage]) -> str:
    return dumps(
        {
            "type": "history",
            "room": room,
            "messages": [message_fields(m) for m in messages],
        }
    )


def created(room: str, kind: str, role: str, ref: str | None) -> str:
    return dumps(
        {"type": "created", "room": room, "kind": kind, "role": role, "ref": ref}
    )


def invited(room: str, user: str, ref: str | None) -> str:
    return dumps({"type": "invited", "room": room, "user": user, "ref": ref})


def invitation(room: str, by: str) -> str:
    return dumps({"type": "invitation", "room": room, "by": by})


def rooms(views: list[RoomView], ref: str | None) -> str:
    listed = [_room_view(v) for v in views]
    return dumps({"type": "rooms", "rooms": listed, "ref": ref})


def _room_view(view: RoomView) -> dict[str, object]:
    fields: dict[str, object] = {
        "room": view.room,
        "kind": view.kind,
        "role": view.role,
    }
    if view.user is not None:  # a direct room: who the other one of the two is
        fields["user"] = view.user
    if view.last_read is not None:  # a member: their marker and unread count
        fields["last_read"], fields["unread"] = view.last_read, view.unread
    return fields


def direct(room: str, user: str, ref: str | None = None) -> str:
    """``room`` is the direct room of the receiver and ``user``: the answer to ``dm``, and
    what the other one's connections are told (without a ``ref``)."""
    payload: dict[str, Any] = {"type": "direct", "room": room, "user": user}
    if ref is not None:
        payload["ref"] = ref
    return dumps(payload)


def error(code: str, message: str, ref: str | None = None) -> str:
    payload: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if ref is not None:
        payload["ref"] = ref
    return dumps(payload)


def message(stored: StoredMessage) -> str:
    return dumps(message_fields(stored))


def message_fields(stored: StoredMessage) -> dict[str, object]:
    """One stored entry's wire object: a ``message`` (as it is now), ``member``, ``edited``, ``deleted``."""
    if stored.kind != SAY:
        return edits.any_event_fields(stored)
    fields: dict[str, object] = {
        "type": "message",
        "room": stored.room,
        "id": stored.id,
        "user": stored.user,
        "text": stored.text,
        "ts": stored.ts,
    }
    if stored.app:  # published by an application (``user`` is its API key's name)
        fields["app"] = True
    if (
        stored.stream is not None
    ):  # the whole of a streamed message: it replaces the preview
        fields["stream"] = stored.stream
    return edits.add_state(fields, stored)
