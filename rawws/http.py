"""Plain HTTP values and routing: what a request is, what the answer is, which handler gets it.

No I/O here: the edge turns h11 events into a ``Request`` and a ``Response``
back into h11 events. Handlers are looked up by path, then by method, so an
unknown path is 404 and a known path with the wrong method is 405 + ``Allow``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs

from rawws.errors import HttpError


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request. ``query`` is kept apart from ``path`` because it may hold a secret."""

    method: str
    path: str
    query: str
    headers: list[tuple[bytes, bytes]]
    http_version: bytes = b"1.1"
    body: bytes = b""
    peer: str = ""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or ``None``."""
        wanted = name.lower().encode("ascii")
        for key, value in self.headers:
            if key == wanted:
                return value.decode("latin-1")
        return None

    def query_param(self, name: str) -> str | None:
        values = parse_qs(self.query, keep_blank_values=True).get(name)
        return values[0] if values else None

    @classmethod
    def from_target(cls, method: str, target: str, **fields: object) -> Request:
        path, _, query = target.partition("?")
        return cls(method=method, path=path, query=query, **fields)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def reason(self) -> bytes:
        try:
            return HTTPStatus(self.status).phrase.encode("ascii")
        except ValueError:
            return b""


def json_response(status: int, payload: object, headers: list[tuple[str, str]] | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return Response(
        status,
        [("Content-Type", "application/json"), *(headers or [])],
        body,
    )


def error_response(error: HttpError) -> Response:
    """The JSON body every error answer carries: ``{"error": {"status", "message"}}``."""
    payload = {"error": {"status": error.status, "message": error.message}}
    return json_response(error.status, payload, error.headers)


Handler = Callable[[Request], Awaitable[Response]]


class Router:
    """Maps ``path`` → ``method`` → handler; websocket paths are listed apart."""

    def __init__(self) -> None:
        self._routes: dict[str, dict[str, Handler]] = {}
        self.websocket_paths: set[str] = set()

    def add(self, method: str, path: str, handler: Handler) -> None:
        self._routes.setdefault(path, {})[method.upper()] = handler

    def add_websocket(self, path: str) -> None:
        self.websocket_paths.add(path)

    def resolve(self, method: str, path: str) -> Handler:
        """The handler for this request, or an ``HttpError`` 404/405 saying why not."""
        methods = self._routes.get(path)
        if methods is None:
            raise HttpError(404, "no such resource")
        handler = methods.get(method)
        if handler is None and method == "HEAD":
            handler = methods.get("GET")
        if handler is None:
            allowed = ", ".join(sorted(methods))
            raise HttpError(405, f"method {method} not allowed", [("Allow", allowed)])
        return handler
