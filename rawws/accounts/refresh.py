"""Refresh tokens as the OAuth 2.0 security best current practice (RFC 9700 §4.14) describes them.

* A refresh token is 32 random bytes (base64url); the store keeps only its
  SHA-256, so a leaked database holds no token that works.
* Every use rotates it: the presented token is spent and a successor issued.
  A token is single-use; presenting a spent one again means two parties hold
  it (a thief and the user), and the whole family (every token descended from
  that login) is revoked, the legitimate holder's current token with it.
* The token lasts ``refresh_ttl_s`` from its issue (30 days by default), so a
  session used at least that often never asks for the password again; logout
  revokes the family, a password change revokes every other family of the user.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from rawws.accounts.tokens import ACCESS, Tokens
from rawws.errors import AuthError
from rawws.store.base import REUSED, ROTATED, Store

REFRESH_TOKEN_BYTES = 32
MAX_REFRESH_TOKEN_CHARS = (
    128  # ours are 43; anything much longer is refused before hashing
)


def new_refresh_token() -> str:
    return secrets.token_urlsafe(REFRESH_TOKEN_BYTES)


def refresh_token_hash(token: str) -> str:
    """The SHA-256 (hex) the store keeps in place of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login or a refresh hands back: a short access token and the next refresh token."""

    access_token: str
    access_expires_in: int
    refresh_token: str
    refresh_expires_in: int
    session: str
    #: The user's name as registered: a page that signs in from its cookie learns who it is.
    username: str = ""

    def as_json(self) -> dict[str, object]:
        return {
            "user": self.username,
            "access_token": self.access_token,
            "token_type": "bearer",
            "expires_in": self.access_expires_in,
            "refresh_token": self.refresh_token,
            "refresh_expires_in": self.refresh_expires_in,
        }


class RefreshTokens:
    """Issues, rotates and revokes refresh-token families in the store."""

    def __init__(
        self,
        store: Store,
        tokens: Tokens,
        ttl_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("the refresh-token lifetime must be positive")
        self.store = store
        self.tokens = tokens
        self.ttl_s = ttl_s
        self.clock = clock

    async def start(self, user_id: int, username: str) -> TokenPair:
        """A new family (a login): its first refresh token and an access token bound to it."""
        family = secrets.token_urlsafe(16)
        refresh = new_refresh_token()
        await self.store.add_refresh_token(
            refresh_token_hash(refresh), family, user_id, username, self._expiry()
        )
        return self._pair(username, refresh, family)

    async def rotate(self, presented: object) -> TokenPair:
        """Spend ``presented`` and hand back its successor, or 401 (a replay revokes the family)."""
        if (
            not isinstance(presented, str)
            or not presented
            or len(presented) > MAX_REFRESH_TOKEN_CHARS
        ):
            raise AuthError("refresh_token required")
        successor = new_refresh_token()
        rotation = await self.store.rotate_refresh_token(
            refresh_token_hash(presented),
            refresh_token_hash(successor),
            self._expiry(),
            self.clock(),
        )
        if rotation.outcome == REUSED:
            raise AuthError(
                "refresh token already used: every session of this login is revoked"
            )
        if rotation.outcome != ROTATED:
            raise AuthError("refresh token invalid, expired or revoked")
        return self._pair(rotation.username, successor, rotation.family)

    @staticmethod
    def check_presented(presented: object) -> None:
        """401 unless ``presented`` can be a refresh token (a string, not empty, not too long)."""
        if (
            not isinstance(presented, str)
            or not presented
            or len(presented) > MAX_REFRESH_TOKEN_CHARS
        ):
            raise AuthError("refresh_token required")

    async def revoke(self, presented: object) -> bool:
        self.check_presented(presented)
        assert isinstance(presented, str)
        return await self.store.revoke_refresh_family(refresh_token_hash(presented))

    async def revoke_others(self, user_id: int, keep_family: str | None) -> int:
        return await self.store.revoke_user_families(user_id, keep_family)

    def _expiry(self) -> float:
        return self.clock() + self.ttl_s

    def _pair(self, username: str, refresh: str, family: str) -> TokenPair:
        access, identity = self.tokens.issue(username, ACCESS, session=family)
        return TokenPair(
            access,
            int(identity.expires_at - self.tokens.clock()),
            refresh,
            int(self.ttl_s),
            family,
            username,
        )
