"""What a chat client reads from one frame alone, with no state: whether it is the chat's
``welcome``, and the one answer `rawws send --user` waits for. No I/O.

* ``is_welcome``: the chat's first frame on every connection, which tells the
  chat from another WebSocket (``/echo`` would echo our join back instead).
* ``send_outcome``: after ``join`` + ``say``, the ``ack`` (``Stored``) or the
  ``error`` (``NotStored``) that ends `rawws send --user`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Stored:
    """``rawws send --user``: the server stored the message (its room and id)."""

    room: str
    id: int


@dataclass(frozen=True, slots=True)
class NotStored:
    """``rawws send --user``: the server refused the join or the say (its error code and message)."""

    code: str
    message: str


def is_welcome(data: str | bytes) -> bool:
    """The chat's ``welcome``, which it sends first on every connection, before anything we send is answered."""
    if isinstance(data, bytes):
        return False
    try:
        frame = json.loads(data)
    except ValueError:
        return False
    return isinstance(frame, dict) and frame.get("type") == "welcome"


def send_outcome(data: str | bytes, ref: str) -> Stored | NotStored | None:
    """A frame received after ``join`` + ``say(ref)``: the outcome once it is known, else ``None``.

    Any ``error`` ends it: the only frames sent are the join and the say, so an
    error without our ref is the join's (and the say then fails as ``not_joined``).
    """
    if isinstance(data, bytes):
        return None
    try:
        frame = json.loads(data)
    except ValueError:
        return None
    if not isinstance(frame, dict):
        return None
    if (
        frame.get("type") == "ack"
        and frame.get("ref") == ref
        and isinstance(frame.get("id"), int)
    ):
        return Stored(str(frame.get("room")), frame["id"])
    if frame.get("type") == "error":
        return NotStored(
            str(frame.get("code") or "error"), str(frame.get("message") or "refused")
        )
    return None
