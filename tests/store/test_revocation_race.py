"""Revocation is atomic with rotation: a refresh in flight never outlives a logout or a password change.

On PostgreSQL the revoking UPDATE and a concurrent rotation's INSERT used to
interleave (READ COMMITTED: the UPDATE's snapshot did not hold the successor
yet), so the successor was born unrevoked and rotated on for 30 days. Each
round here races one rotation against one revocation through the real
``RefreshTokens`` on the real database, then tries the successor: it must be
refused whenever the revocation ran. 1,000 rounds on PostgreSQL, as the issue asks.
"""

from __future__ import annotations

import asyncio

from rawws.accounts.refresh import RefreshTokens, TokenPair
from rawws.accounts.tokens import Tokens, TokenSettings
from rawws.errors import AuthError
from rawws.store import SqlStore

HASH = "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
PG_ROUNDS = 1000
SQLITE_ROUNDS = 200


def rounds(store: SqlStore) -> int:
    return PG_ROUNDS if store.dialect == "postgresql" else SQLITE_ROUNDS


async def survives(refresh: RefreshTokens, successor: str) -> bool:
    try:
        await refresh.rotate(successor)
    except AuthError:
        return False
    return True


async def test_a_logout_racing_a_refresh_leaves_no_live_successor(
    store: SqlStore,
) -> None:
    refresh = RefreshTokens(store, Tokens(TokenSettings(secret=b"k" * 32)), 3600.0)
    user = await store.create_user("ada", HASH)
    survivors = 0
    for _ in range(rounds(store)):
        pair = await refresh.start(user.id, user.username)
        rotated, revoked = await asyncio.gather(
            refresh.rotate(pair.refresh_token),
            refresh.revoke(pair.refresh_token),
            return_exceptions=True,
        )
        assert not isinstance(revoked, BaseException), revoked
        assert isinstance(rotated, AuthError | TokenPair), (
            rotated
        )  # refused, or rotated
        if not isinstance(rotated, BaseException):
            survivors += await survives(refresh, rotated.refresh_token)
    assert survivors == 0, (
        f"{survivors} of {rounds(store)} successors outlived a logout"
    )


async def test_a_password_change_racing_a_refresh_leaves_no_live_successor(
    store: SqlStore,
) -> None:
    refresh = RefreshTokens(store, Tokens(TokenSettings(secret=b"k" * 32)), 3600.0)
    user = await store.create_user("ada", HASH)
    survivors = 0
    for _ in range(rounds(store)):
        pair = await refresh.start(user.id, user.username)
        rotated, revoked = await asyncio.gather(
            refresh.rotate(pair.refresh_token),
            refresh.revoke_others(user.id, keep_family=None),
            return_exceptions=True,
        )
        assert not isinstance(revoked, BaseException), revoked
        assert isinstance(rotated, AuthError | TokenPair), (
            rotated
        )  # refused, or rotated
        if not isinstance(rotated, BaseException):
            survivors += await survives(refresh, rotated.refresh_token)
    assert survivors == 0, (
        f"{survivors} of {rounds(store)} successors outlived a password change"
    )
