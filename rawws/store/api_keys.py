"""API keys in SQL: ``SqlStore`` inherits creating, listing, revoking and reading them.

What a key *is* (its format, the hash of its secret, the rooms it reaches) lives here too,
without I/O, because the store makes a key and reads one back and may not import
``rawws.apps`` (the layer above it); ``rawws.apps.keys`` re-exports these names and adds
the parts only the API needs (reading a presented key, checking its secret).

A key's row keeps the SHA-256 of its secret, never the secret: the key is shown once, by
``create_api_key``'s caller. A revoked key's row stays (its name stays taken, so a name
once used never means another key).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from rawws.errors import RawwsError
from rawws.store.names import username_key
from rawws.store.room_patterns import room_matches as room_matches
from rawws.store.schema import api_keys

PREFIX = "rwk_"
ID_HEX_DIGITS = 12
SECRET_BYTES = 32


class KeyNameTaken(RawwsError):
    """Another key (live or revoked) has this name, in any case."""


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


def _key(row: Any) -> ApiKey:
    return ApiKey(
        row.id,
        row.name,
        row.secret_hash,
        frozenset(row.scopes.split()),
        tuple(row.rooms.split()),
        float(row.per_s),
        int(row.burst),
        float(row.created_at),
        None if row.revoked_at is None else float(row.revoked_at),
    )


class ApiKeysSql:
    """The API keys' part of the store (``rawws api-key``, and each node's key lookup)."""

    engine: AsyncEngine

    async def create_api_key(
        self,
        name: str,
        scopes: frozenset[str] | set[str] | tuple[str, ...],
        rooms: tuple[str, ...] | list[str],
        per_s: float,
        burst: int,
        now: float,
    ) -> tuple[str, ApiKey]:
        """A new key named ``name`` (checked by the caller against the user-name rules): (the key
        to show once, the key as stored). ``KeyNameTaken`` if another key has the name in any case."""
        shown, key_id, secret_hash = new_key()
        key = ApiKey(
            key_id,
            name,
            secret_hash,
            frozenset(scopes),
            tuple(rooms),
            float(per_s),
            int(burst),
            now,
        )
        try:
            async with self.engine.begin() as conn:
                names = (await conn.execute(sa.select(api_keys.c.name))).scalars()
                if any(username_key(taken) == username_key(name) for taken in names):
                    raise KeyNameTaken(f"a key named {name!r} exists already")
                await conn.execute(
                    api_keys.insert().values(
                        id=key_id,
                        name=name,
                        secret_hash=secret_hash,
                        scopes=" ".join(sorted(key.scopes)),
                        rooms=" ".join(key.rooms),
                        per_s=key.per_s,
                        burst=key.burst,
                        created_at=now,
                        revoked_at=None,
                    )
                )
        except IntegrityError:  # created meanwhile by another command
            raise KeyNameTaken(f"a key named {name!r} exists already") from None
        return shown, key

    async def list_api_keys(self) -> list[ApiKey]:
        """Every key, revoked ones too, by name."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(api_keys).order_by(api_keys.c.name))
            return [_key(row) for row in rows]

    async def revoke_api_key(self, name: str, now: float) -> bool:
        """Revoke the live key named ``name`` (in any case); ``False`` if there is none."""
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(api_keys.c.id, api_keys.c.name).where(
                        api_keys.c.revoked_at.is_(None)
                    )
                )
            ).all()
            ids = [
                row.id for row in rows if username_key(row.name) == username_key(name)
            ]
            if not ids:
                return False
            await conn.execute(
                api_keys.update().where(api_keys.c.id.in_(ids)).values(revoked_at=now)
            )
            return True

    async def api_key(self, key_id: str) -> ApiKey | None:
        """The key with this id, revoked or not (the caller refuses a revoked one)."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id))
            ).first()
        return None if row is None else _key(row)
