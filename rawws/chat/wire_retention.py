"""The wire side of a room's own retention: ``retention {room, max_age?, max_messages?, ref?}``
(its owner's command) and its answer. No I/O.

A room's owner may keep its history for less than the server does (``--history-max-age``,
``--history-max-messages``), never for more: the server's bounds are what its operator
promised to keep at most. 0 (or leaving a field out) takes the server's bound alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rawws.errors import ChatError

MAX_BOUND = 2**31 - 1  # seconds or messages: far beyond any retention worth stating


@dataclass(frozen=True, slots=True)
class RetentionChange:
    room: str
    max_age_s: int  # 0: no bound of the room's own
    max_messages: int
    ref: str | None = None


def parse_retention(
    frame: dict[str, Any], ref: str | None, room_of: Callable[[dict[str, Any]], str]
) -> RetentionChange:
    """``room_of``: the protocol's room-name check (``rawws.chat.wire``)."""
    return RetentionChange(
        room_of(frame), _bound(frame, "max_age"), _bound(frame, "max_messages"), ref
    )


def _bound(frame: dict[str, Any], name: str) -> int:
    value = frame.get(name, 0)
    if value is None:
        return 0
    if type(value) is not int or not 0 <= value <= MAX_BOUND:
        raise ChatError("bad_field", f"{name} must be an integer from 0 to {MAX_BOUND}")
    return value


def retention(room: str, max_age_s: float, max_messages: int, ref: str | None) -> str:
    """The answer: the room's bounds in force now (0: none), the server's included."""
    payload: dict[str, object] = {
        "type": "retention",
        "room": room,
        "max_age": max_age_s,
        "max_messages": max_messages,
    }
    if ref is not None:
        payload["ref"] = ref
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def strictest(server: float, room: float) -> float:
    """The bound in force: the smaller of the two that are set (0: unset)."""
    if server and room:
        return min(server, room)
    return server or room
