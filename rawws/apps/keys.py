"""API keys with no I/O: what a key is, how it is written and presented, and which rooms it reaches.

A key is ``rwk_<id>_<secret>``: the id finds its row, the secret is checked against
the SHA-256 the row keeps. The secret is 32 random bytes, so a fast hash is enough
(nothing to guess), and a copy of the database holds no key that works. The
``rwk_`` prefix keeps a key and a user's token (a JWT) apart wherever either is
presented.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

# The same patterns as an outside token's room rights: one matcher, where accounts and chat reach it.
from rawws.accounts.room_rights import room_matches as room_matches

PREFIX = "rwk_"
ID_HEX_DIGITS = 12
SECRET_BYTES = 32
PUBLISH, ROOMS, USERS, READ = "publish", "rooms", "users", "read"
SCOPES = (PUBLISH, ROOMS, USERS, READ)
_PRESENTED = re.compile(r"rwk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored: ``rooms`` empty means every room; a pattern ending in ``*`` is a prefix."""

    id: str
    name: str
    secret_hash: str
    scopes: frozenset[str]
    rooms: tuple[str, ...] = ()
    per_s: float = 50.0
    burst: int = 100
    created_at: float = 0.0
    revoked_at: float | None = None

    def reaches(self, room: str) -> bool:
        """Whether this key may touch ``room`` at all (outside its rooms it learns nothing of one)."""
        return not self.rooms or room_matches(self.rooms, room)


def new_key() -> tuple[str, str, str]:
    """A fresh key: (what the user is shown once, its id, the SHA-256 of its secret)."""
    key_id = secrets.token_hex(ID_HEX_DIGITS // 2)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return f"{PREFIX}{key_id}_{secret}", key_id, hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def parse_presented(token: str) -> tuple[str, str] | None:
    """(id, secret) of a presented key, or None when it is not shaped like one (a JWT, say)."""
    match = _PRESENTED.fullmatch(token)
    if match is None:
        return None
    return match.group(1), match.group(2)


def secret_matches(key: ApiKey, secret: str) -> bool:
    """The secret's hash is the stored one, compared in constant time."""
    return hmac.compare_digest(key.secret_hash, hash_secret(secret))
