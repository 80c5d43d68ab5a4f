"""The moderation part of the wire protocol (``rawws.chat.wire`` re-exports all of it): the
commands ``kick``, ``ban``, ``unban``, ``mute``, ``unmute``, ``role``, their error codes, and the
frames of membership events. A module of its own so ``wire`` stays one screen of rules each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rawws.store.base import ROLES as ROLES  # what ``role`` may give (clients check it)
from rawws.store.base import StoredMessage

MUTED = "muted"
BANNED = "banned"
NOT_MEMBER = "not_member"
NOT_BANNED = "not_banned"
BAD_TARGET = "bad_target"
BAD_ROLE = "bad_role"
MAX_MUTE_S = 30 * 24 * 3600  # the longest mute, in seconds: a month


@dataclass(frozen=True, slots=True)
class Kick:
    room: str
    user: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Ban:
    room: str
    user: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Unban:
    room: str
    user: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Mute:
    room: str
    user: str
    seconds: int
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Unmute:
    room: str
    user: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class RoleChange:
    room: str
    user: str
    role: str  # owner (hand over), moderator or member
    ref: str | None = None


Moderation = Kick | Ban | Unban | Mute | Unmute | RoleChange


def dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def event_fields(stored: StoredMessage) -> dict[str, object]:
    """The ``member`` object of one stored membership event (live, replayed or in history)."""
    fields: dict[str, object] = {
        "type": "member",
        "room": stored.room,
        "id": stored.id,
        "event": stored.kind,
        "user": stored.target,
        "by": stored.user,
        "ts": stored.ts,
    }
    if stored.kind == "role":
        fields["role"] = stored.text
    elif stored.kind == "muted":
        fields["until"] = float(stored.text)
    return fields


def muted(until: float, ref: str | None) -> str:
    """A muted member's ``say`` refused: until when (seconds since the epoch)."""
    payload: dict[str, Any] = {
        "type": "error",
        "code": MUTED,
        "message": "you are muted in this room",
        "until": until,
    }
    if ref is not None:
        payload["ref"] = ref
    return dumps(payload)


def removed(event: StoredMessage) -> str:
    """To the connections of a kicked or banned user: they are out of the room from ``id`` on."""
    return dumps(
        {
            "type": "removed",
            "room": event.room,
            "id": event.id,
            "reason": event.kind,
            "by": event.user,
        }
    )


def moderated(ref: str | None, event: StoredMessage) -> str:
    """The answer to a moderation command: done, as the event with this ``id``."""
    return dumps(
        {
            "type": "moderated",
            "ref": ref,
            "room": event.room,
            "user": event.target,
            "event": event.kind,
            "id": event.id,
        }
    )


def moderation_frame(
    kind: str,
    room: str,
    user: str,
    ref: str | None = None,
    more: dict[str, object] | None = None,
) -> str:
    """``kick``, ``ban``, ``unban``, ``unmute``; ``mute`` with ``seconds``; ``role`` with ``role``."""
    return dumps({"type": kind, "room": room, "user": user, "ref": ref, **(more or {})})
