"""The read-marker and typing part of the wire protocol (``rawws.chat.wire`` parses with it):
the commands ``read {room, id}`` and ``typing {room}``, and their frames. A module of its
own so ``wire`` stays one screen of rules each.

``read``'s marker and ``typing`` are not stored messages: no id of their own in the
room's sequence, never replayed by ``since``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rawws.errors import ChatError

#: How long a client shows "USER is typing…" after a ``typing`` frame (unless refreshed).
TYPING_EXPIRES_S = 5
#: At most one ``typing`` per user and room in this many seconds (per node); more are dropped.
TYPING_INTERVAL_S = 1.0


@dataclass(frozen=True, slots=True)
class Read:
    room: str
    id: int  # the highest message id the user has read in ``room``
    ref: str | None = None  # accepted, ignored: nothing answers a ``read`` but ``read``


@dataclass(frozen=True, slots=True)
class Typing:
    room: str


Command = Read | Typing  # part of ``wire.Command``

#: The frame types this module parses (``wire.parse_command`` hands them over).
KINDS = ("read", "typing")


def parse(kind: str, room: str, read_id: int | None, ref: str | None) -> Read | Typing:
    """``read`` or ``typing`` of ``room`` (checked by ``wire``, as ``id``'s range is)."""
    if kind == "typing":
        return Typing(room)
    if read_id is None:
        raise ChatError(BAD_FIELD, "id is required: the highest message id read")
    return Read(room, read_id, ref)


BAD_FIELD = (
    "bad_field"  # wire.BAD_FIELD (wire imports this module; a test holds them equal)
)


def dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def read_moved(room: str, last_read: int) -> str:
    """To every connection of the user: their marker in ``room`` moved forward to ``last_read``."""
    return dumps({"type": "read", "room": room, "last_read": last_read})


def typing(room: str, user: str) -> str:
    """To the other users' connections in ``room``: ``user`` is typing, for ``expires_in`` seconds."""
    return dumps(
        {"type": "typing", "room": room, "user": user, "expires_in": TYPING_EXPIRES_S}
    )
