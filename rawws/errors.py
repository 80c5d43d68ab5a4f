"""Errors that carry their wire answer: an HTTP status or a WebSocket close code."""

from __future__ import annotations


class RawwsError(Exception):
    """Base of every error rawws raises on purpose."""


class HttpError(RawwsError):
    """A request that earns an HTTP error answer instead of what it asked for."""

    def __init__(
        self,
        status: int,
        message: str,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []
