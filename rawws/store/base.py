"""What the server needs from a database, as a ``typing.Protocol``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from rawws.errors import RawwsError


class UsernameTaken(RawwsError):
    """Registration of a name that exists already (case-insensitively)."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    password_hash: str
    created_at: datetime


class Store(Protocol):
    async def create_user(self, username: str, password_hash: str) -> User: ...

    async def get_user(self, username: str) -> User | None: ...

    async def update_password_hash(self, user_id: int, password_hash: str) -> None: ...

    async def close(self) -> None: ...
