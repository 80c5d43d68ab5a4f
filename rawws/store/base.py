"""What the server needs from a database, as a ``typing.Protocol``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    password_hash: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as stored: ``id`` is its place in its room, increasing without gaps."""

    room: str
    id: int
    user: str
    text: str
    ts: float


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message accepted from a client, not yet numbered."""

    room: str
    user: str
    text: str
    ts: float


class Store(Protocol):
    async def create_user(self, username: str, password_hash: str) -> User: ...

    async def get_user(self, username: str) -> User | None: ...

    async def update_password_hash(self, user_id: int, password_hash: str) -> None: ...

    async def append_messages(self, batch: list[NewMessage]) -> list[StoredMessage]: ...

    async def messages_after(self, room: str, after: int, limit: int) -> list[StoredMessage]: ...

    async def last_message_id(self, room: str) -> int: ...

    async def messages_before(self, room: str, before: int | None, limit: int) -> list[StoredMessage]: ...

    async def close(self) -> None: ...
