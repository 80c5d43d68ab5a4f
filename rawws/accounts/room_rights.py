"""Room rights an outside token may carry (the ``rawws_rooms`` claim), and the room patterns they use. No I/O.

An outside identity provider (``--jwt-public-key``) may narrow what its users do in
the chat: ``{"join": [patterns], "publish": [patterns]}``, a pattern being a room's
name or a prefix ending in ``*``. The claim is parsed strictly when the token is
verified (``parse_room_rights``): a malformed one refuses the token, so a provider's
mistake never reads as "no limits". Bounded, since a token is read before anyone is
known: at most ``MAX_PATTERNS`` patterns per list, of at most ``MAX_PATTERN_CHARS``.

``room_matches`` lives here, not in the server API's keys (which use the same
patterns), because both the accounts and the chat need it and neither may import
``rawws.apps``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rawws.store.room_patterns import room_matches as room_matches

#: The claim's name, in an outside access token and in a ticket bought with one.
CLAIM = "rawws_rooms"
MAX_PATTERNS = 64  # per list
MAX_PATTERN_CHARS = 33  # a room name's 32 characters, or a prefix of them and the '*'
#: A room's name or a prefix of one (the characters of every kind of name), then '*' or not.
_PATTERN = re.compile(r"[a-z0-9_.~-]*\*?")
_LISTS = ("join", "publish")


@dataclass(frozen=True, slots=True)
class RoomRights:
    """The rooms a token lets its user join (and so read) and publish in (``say``, ``edit``, ``typing``)."""

    join: tuple[str, ...]
    publish: tuple[str, ...]

    def may_join(self, room: str) -> bool:
        return room_matches(self.join, room)

    def may_publish(self, room: str) -> bool:
        return room_matches(self.publish, room)

    def as_claim(self) -> dict[str, list[str]]:
        """The claim that parses back to these rights (a ticket carries them so)."""
        return {"join": list(self.join), "publish": list(self.publish)}


def parse_room_rights(value: object) -> RoomRights:
    """The rights a ``rawws_rooms`` claim grants, or ``ValueError`` saying what is wrong with it.

    An object with ``join`` and/or ``publish`` and nothing else; a list left out grants
    nothing. Each pattern is a non-empty string of a room name's characters, with at
    most one ``*``, at its end.
    """
    if not isinstance(value, dict):
        raise ValueError(f"{CLAIM} must be an object")
    unknown = set(value) - set(_LISTS)
    if unknown:
        raise ValueError(f"{CLAIM} has unknown fields")
    lists: list[tuple[str, ...]] = []
    for name in _LISTS:
        patterns = value.get(name, [])
        if not isinstance(patterns, list) or len(patterns) > MAX_PATTERNS:
            raise ValueError(f"{CLAIM}.{name} must be a list of at most {MAX_PATTERNS}")
        for pattern in patterns:
            if not _valid_pattern(pattern):
                raise ValueError(f"{CLAIM}.{name} has an invalid pattern")
        lists.append(tuple(patterns))
    return RoomRights(lists[0], lists[1])


def honoured_rights(
    claims: dict[str, object], outside: bool, ticket: bool, of_outside: bool
) -> RoomRights | None:
    """The rights a verified token's claims grant: None where they grant no limits.

    Honoured in an outside provider's token (``outside``) and in a ticket we signed for
    one of its users (``of_outside``: bought with such a token, the only kind we write it
    into). Our own access tokens never carry the claim: one that did is read without it.
    A ticket that carried it for a local user (never written so) is refused (``ValueError``),
    failing closed; so is a malformed claim (never read as "no limits").
    """
    if CLAIM not in claims or not (outside or ticket):
        return None
    if not outside and not of_outside:
        raise ValueError(f"{CLAIM} in a local user's ticket")
    return parse_room_rights(claims[CLAIM])


def _valid_pattern(pattern: object) -> bool:
    return (
        isinstance(pattern, str)
        and 0 < len(pattern) <= MAX_PATTERN_CHARS
        and _PATTERN.fullmatch(pattern) is not None
    )
