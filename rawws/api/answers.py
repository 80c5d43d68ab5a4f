"""The answers of ``/api/v1`` as values: each read from the JSON object the server sent (no I/O).

A field missing or of the wrong type is ``ApiError(200, "bad_answer", …)``: the
server is not the one this client was written for, and a typed value built from
a guess would be worse than the error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rawws.api.errors import ApiError


@dataclass(frozen=True, slots=True)
class Published:
    """A message stored (or, with ``duplicate``, stored before under the same idempotency key)."""

    room: str
    id: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """A room as ``rooms_create`` and ``rooms_list`` give it: its full name, kind and owner."""

    room: str
    kind: str
    owner: str | None


@dataclass(frozen=True, slots=True)
class Membership:
    room: str
    user: str
    role: str


@dataclass(frozen=True, slots=True)
class StreamAppended:
    stream: str
    seq: int


@dataclass(frozen=True, slots=True)
class StreamFinished:
    """The stream stored as one message: its id in the room's sequence."""

    room: str
    stream: str
    id: int


def bad_answer(why: str) -> ApiError:
    return ApiError(200, "bad_answer", why)


def field(answer: dict[str, Any], name: str, kind: type) -> Any:
    """``answer[name]``, which must be a ``kind`` (an int is not a bool here, nor a bool an int)."""
    value = answer.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise bad_answer(f"{name!r} is missing or not a {kind.__name__}")
    return value


def optional_text(answer: dict[str, Any], name: str) -> str | None:
    value = answer.get(name)
    if value is not None and not isinstance(value, str):
        raise bad_answer(f"{name!r} is not a string")
    return value


def published(answer: dict[str, Any]) -> Published:
    return Published(
        field(answer, "room", str),
        field(answer, "id", int),
        field(answer, "duplicate", bool),
    )


def published_or_error(result: Any) -> Published | ApiError:
    """One entry of ``publish_batch``'s ``results``: a ``Published`` or the ``ApiError`` it answered."""
    if not isinstance(result, dict):
        raise bad_answer("a batch result is not an object")
    error = result.get("error")
    if error is None:
        return published(result)
    if not isinstance(error, dict):
        raise bad_answer("a batch result's error is not an object")
    return ApiError(
        field(error, "status", int),
        field(error, "code", str),
        field(error, "message", str),
    )


def room_info(answer: dict[str, Any]) -> RoomInfo:
    return RoomInfo(
        field(answer, "room", str),
        field(answer, "kind", str),
        optional_text(answer, "owner"),
    )


def membership(answer: dict[str, Any]) -> Membership:
    return Membership(
        field(answer, "room", str),
        field(answer, "user", str),
        field(answer, "role", str),
    )


def texts(answer: dict[str, Any], name: str) -> list[str]:
    values = field(answer, name, list)
    if not all(isinstance(value, str) for value in values):
        raise bad_answer(f"{name!r} holds something other than strings")
    return list(values)


def objects(answer: dict[str, Any], name: str) -> list[dict[str, Any]]:
    values = field(answer, name, list)
    if not all(isinstance(value, dict) for value in values):
        raise bad_answer(f"{name!r} holds something other than objects")
    return list(values)


def stream_appended(answer: dict[str, Any]) -> StreamAppended:
    return StreamAppended(field(answer, "stream", str), field(answer, "seq", int))


def stream_finished(answer: dict[str, Any]) -> StreamFinished:
    return StreamFinished(
        field(answer, "room", str),
        field(answer, "stream", str),
        field(answer, "id", int),
    )
