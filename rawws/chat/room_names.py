"""The protocol's names of rooms, and what a name alone tells: its kind. No I/O.

Re-exported by ``rawws.chat.wire`` (the protocol's one home); kept apart so that the rules
of names read in one place.
"""

from __future__ import annotations

import re

MAX_ROOM_CHARS = 32
#: A private room's name is the label its creator chose, a '.', and this many random
#: characters the server adds: no public name has a '.', so the two kinds never share a
#: name, and a private name is never taken, so ``create`` never tells a private room exists.
PRIVATE_SUFFIX_CHARS = 8
MAX_PRIVATE_LABEL_CHARS = MAX_ROOM_CHARS - 1 - PRIVATE_SUFFIX_CHARS
PUBLIC_ROOM_NAME = re.compile(rf"[a-z0-9][a-z0-9_-]{{0,{MAX_ROOM_CHARS - 1}}}")
PRIVATE_ROOM_NAME = re.compile(
    rf"[a-z0-9][a-z0-9_-]{{0,{MAX_PRIVATE_LABEL_CHARS - 1}}}\.[a-z0-9]{{{PRIVATE_SUFFIX_CHARS}}}"
)
#: A direct room's name: '~' and a digest of its two users' keys, so each pair has exactly
#: one (the rooms table's primary key) and no public or private name (neither has a '~') is one.
DIRECT_PREFIX = "~"
DIRECT_DIGEST_CHARS = 24
DIRECT_ROOM_NAME = re.compile(rf"~[0-9a-f]{{{DIRECT_DIGEST_CHARS}}}")
# A room name matches this whole (the same syntax in Python and JavaScript: the page gets it too).
ROOM_NAME = re.compile(
    f"{PUBLIC_ROOM_NAME.pattern}|{PRIVATE_ROOM_NAME.pattern}|{DIRECT_ROOM_NAME.pattern}"
)
ROOM_RULE = (
    f"1-{MAX_ROOM_CHARS} characters of a-z, 0-9, '_' and '-', starting with a letter or digit"
    f" (a private room's name ends in '.' and {PRIVATE_SUFFIX_CHARS} letters or digits;"
    f" a direct room's is '~' and {DIRECT_DIGEST_CHARS} hex digits)"
)


def is_private(room: str) -> bool:
    """A private room's name, by its syntax alone (``PRIVATE_ROOM_NAME``): no lookup needed."""
    return "." in room


def is_direct(room: str) -> bool:
    """A direct room's name, by its syntax alone (``DIRECT_ROOM_NAME``): no lookup needed."""
    return room.startswith(DIRECT_PREFIX)


def has_door(room: str) -> bool:
    """Only stored members may enter (a private or a direct room): told by the name alone, so
    the question itself never reads the store and never depends on whether the room exists."""
    return is_private(room) or is_direct(room)
