"""A session's position, ``room:id,room:id``: what ``Last-Event-ID`` carries, with no I/O.

The position is the last message id a session got in each room it is in. It is
the ``id:`` of every Server-Sent Event, so a browser's reconnect (which sends
the last ``id:`` it saw as ``Last-Event-ID``) names every room and where to
resume it: the position *is* ``since``, for all of a session's rooms at once.
Room names never hold ``:`` or ``,`` (``rawws.chat.room_names``), so the text
needs no escaping. Reading one is bounded before any work is done for it.
"""

from __future__ import annotations

from collections.abc import Mapping

from rawws.chat.room_names import MAX_ROOM_CHARS, ROOM_NAME

#: The largest id a position may name (the store's ids are 63-bit integers).
MAX_ID = 2**63 - 1
#: The most characters one room of a position takes: its name, ':', 19 digits, ','.
MAX_PART_CHARS = MAX_ROOM_CHARS + 1 + len(str(MAX_ID)) + 1


class BadPosition(ValueError):
    """A ``Last-Event-ID`` that is not a position (its ``str`` says why, for the client)."""


def format_position(last_ids: Mapping[str, int]) -> str:
    """``last_ids`` (room → last id, in the order joined) as a position."""
    # A list, not a generator: this runs once per event per session (a third of an SSE delivery).
    return ",".join([f"{room}:{last_id}" for room, last_id in last_ids.items()])


def parse_position(text: str, max_rooms: int) -> dict[str, int]:
    """The rooms and ids ``text`` names, in its order; ``BadPosition`` unless each part is
    ``room:id`` with a room name, an id from 0 and no room twice, at most ``max_rooms`` of them."""
    text = text.strip()
    if not text:
        return {}
    if len(text) > max_rooms * MAX_PART_CHARS:  # bounded before it is split
        raise BadPosition(f"a position names at most {max_rooms} rooms")
    parts = text.split(",", max_rooms)
    if len(parts) > max_rooms:
        raise BadPosition(f"a position names at most {max_rooms} rooms")
    position: dict[str, int] = {}
    for part in parts:
        room, colon, digits = part.strip().rpartition(":")
        if not colon or not ROOM_NAME.fullmatch(room):
            raise BadPosition(f"{part[:40]!r} is not room:id")
        if not digits.isascii() or not digits.isdigit() or len(digits) > 19:
            raise BadPosition(f"{part[:40]!r}: the id is not a whole number")
        last_id = int(digits)
        if last_id > MAX_ID:
            raise BadPosition(f"{part[:40]!r}: the id is too large")
        if room in position:
            raise BadPosition(f"{room} is named twice")
        position[room] = last_id
    return position
