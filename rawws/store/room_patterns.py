"""Room patterns: a room's name exactly, or a prefix ending in ``*``.

One matcher for every place rooms are granted by pattern: an API key's ``--room``, an
outside token's ``rawws_rooms`` claim, and the store's listing of a key's rooms. It sits
in the store, the lowest layer all of them may import.
"""

from __future__ import annotations

from collections.abc import Sequence


def room_matches(patterns: Sequence[str], room: str) -> bool:
    """``room`` is named by one of ``patterns``: exactly, or by a prefix ending in ``*``."""
    for pattern in patterns:
        if pattern.endswith("*"):
            if room.startswith(pattern[:-1]):
                return True
        elif room == pattern:
            return True
    return False
