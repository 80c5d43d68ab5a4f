"""API keys with no I/O: what a key is, how it is written and presented, and which rooms it reaches.

A key is ``rwk_<id>_<secret>``: the id finds its row, the secret is checked against
the SHA-256 the row keeps. The secret is 32 random bytes, so a fast hash is enough
(nothing to guess), and a copy of the database holds no key that works. The
``rwk_`` prefix keeps a key and a user's token (a JWT) apart wherever either is
presented.

The format, the hash and ``ApiKey`` are defined in ``rawws.store.api_keys`` (the store
makes and reads keys and may not import this layer) and re-exported here; the checks of
what ``rawws api-key create`` is given are here, where the user-name and room-name rules
may be read.
"""

from __future__ import annotations

import hmac
import math
import re

from rawws.accounts.passwords import USERNAME
from rawws.chat.room_names import MAX_ROOM_CHARS, ROOM_NAME
from rawws.store.api_keys import (
    ID_HEX_DIGITS as ID_HEX_DIGITS,
)
from rawws.store.api_keys import PREFIX as PREFIX
from rawws.store.api_keys import SECRET_BYTES as SECRET_BYTES
from rawws.store.api_keys import ApiKey as ApiKey
from rawws.store.api_keys import hash_secret as hash_secret
from rawws.store.api_keys import new_key as new_key
from rawws.store.api_keys import room_matches as room_matches

PUBLISH, ROOMS, USERS, READ = "publish", "rooms", "users", "read"
SCOPES = (PUBLISH, ROOMS, USERS, READ)
_PRESENTED = re.compile(r"rwk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
#: A prefix pattern: the start of a room name, then ``*``.
ROOM_PREFIX = re.compile(rf"[a-z0-9~][a-z0-9_.-]{{0,{MAX_ROOM_CHARS - 1}}}\*")
DEFAULT_PER_S = 50.0
DEFAULT_BURST = 100


def key_settings_problem(
    name: str, scopes: list[str], rooms: list[str], per_s: float, burst: int
) -> str | None:
    """What is wrong with a new key's settings, in one line, or ``None``."""
    if USERNAME.fullmatch(name) is None:
        return (
            f"{name!r}: a key's name follows the user-name rules: 3-32 characters, letters,"
            " digits, '_', '.', '-', starting with a letter or digit"
        )
    if not scopes:
        return f"a key needs at least one --scope ({', '.join(SCOPES)})"
    for scope in scopes:
        if scope not in SCOPES:
            return f"{scope!r}: not a scope ({', '.join(SCOPES)})"
    for room in rooms:
        if ROOM_NAME.fullmatch(room) is None and ROOM_PREFIX.fullmatch(room) is None:
            return f"{room!r}: not a room name, nor a prefix ending in '*'"
    if not math.isfinite(per_s) or per_s <= 0:
        return f"--per-second must be a number above 0, not {per_s:g}"
    if burst < 1:
        return f"--burst must be at least 1, not {burst}"
    return None


def parse_presented(token: str) -> tuple[str, str] | None:
    """(id, secret) of a presented key, or None when it is not shaped like one (a JWT, say)."""
    match = _PRESENTED.fullmatch(token)
    if match is None:
        return None
    return match.group(1), match.group(2)


def secret_matches(key: ApiKey, secret: str) -> bool:
    """The secret's hash is the stored one, compared in constant time."""
    return hmac.compare_digest(key.secret_hash, hash_secret(secret))
