"""One API call as its handler sees it, and the strict reading of its JSON body (no I/O).

Every field a call takes is read through ``Body``: a missing one, one of the wrong
type and one the call does not know are each a 400 ``bad_field`` naming it, so a
typo in a backend is an answer, not a silently ignored field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rawws.apps.keys import ApiKey
from rawws.core.http import Request


class ApiError(Exception):
    """An answer other than 200: ``{"error": {"status", "code", "message"}}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or []

    def payload(self) -> dict[str, object]:
        return {
            "error": {"status": self.status, "code": self.code, "message": self.message}
        }


def bad_field(name: str, why: str) -> ApiError:
    return ApiError(400, "bad_field", f"{name}: {why}")


def no_such_room(room: str) -> ApiError:
    """The one answer for a room that does not exist and a room the key may not reach."""
    return ApiError(404, "no_such_room", f"no room named {room!r}")


_MISSING = object()


@dataclass(slots=True)
class Body:
    """A call's JSON object, read field by field; ``done()`` refuses whatever was not read."""

    values: dict[str, Any]
    _read: set[str] = field(default_factory=set)

    def _take(self, name: str, required: bool) -> Any:
        self._read.add(name)
        value = self.values.get(name, _MISSING)
        if value is _MISSING or value is None:
            if required:
                raise bad_field(name, "missing")
            return None
        return value

    def text(self, name: str, *, required: bool = True, max_chars: int = 0) -> Any:
        value = self._take(name, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise bad_field(name, "must be a string")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # JSON lets a lone surrogate through
            raise bad_field(name, "is not Unicode text") from None
        if max_chars and len(value) > max_chars:
            raise bad_field(name, f"longer than {max_chars} characters")
        return value

    def integer(
        self, name: str, *, required: bool = True, minimum: int = 0, maximum: int = 0
    ) -> Any:
        value = self._take(name, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad_field(name, "must be an integer")
        if value < minimum or (maximum and value > maximum):
            raise bad_field(name, f"must be from {minimum} to {maximum or 'any'}")
        return value

    def items(self, name: str, *, required: bool = True, max_items: int = 0) -> Any:
        value = self._take(name, required)
        if value is None:
            return None
        if not isinstance(value, list):
            raise bad_field(name, "must be an array")
        if max_items and len(value) > max_items:
            raise bad_field(name, f"more than {max_items} items")
        return value

    def done(self) -> None:
        """Refuse any field not read: a handler calls it once it read its fields, before it acts."""
        for name in self.values:
            if name not in self._read:
                raise bad_field(name, "unknown field")


@dataclass(frozen=True, slots=True)
class ApiCall:
    """A call that passed the key, scope and rate checks: its handler reads ``body``."""

    key: ApiKey
    body: Body
    request: Request
    now: float

    def room(self, name: str = "room") -> str:
        """A room field the key reaches (else the same 404 as a room that does not exist)."""
        room: str = self.body.text(name)
        if not self.key.reaches(room):
            raise no_such_room(room)
        return room
