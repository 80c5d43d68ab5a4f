"""Plain HTTP values and routing: what a request is, what the answer is, which handler gets it.

No I/O here: the edge turns h11 events into a ``Request`` and a ``Response``
back into h11 events. Handlers are looked up by path, then by method, so an
unknown path is 404 and a known path with the wrong method is 405 + ``Allow``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from sys import intern
from typing import Any
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
    #: How the client reached us: "https" under TLS here or behind a trusted TLS-terminating proxy.
    scheme: str = "http"

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or ``None``."""
        wanted = name.lower().encode("ascii")
        for key, value in self.headers:
            if key == wanted:
                return value.decode("latin-1")
        return None

    def without_headers(self) -> Request:
        """This request with no headers: what a connection keeps when it needs its path, query and peer
        alone (``WebSocketEndpoint.keep_headers``), so the header list and its values can be freed."""
        return replace(self, headers=[])

    def query_param(self, name: str) -> str | None:
        values = parse_qs(self.query, keep_blank_values=True).get(name)
        return values[0] if values else None

    @classmethod
    def from_target(cls, method: str, target: str, **fields: Any) -> Request:
        path, _, query = target.partition("?")
        # A WebSocket's request stays with it for its life: every connection that asked for the
        # same path with the same method keeps the one string of each (about 100 bytes less each).
        return cls(method=intern(method), path=intern(path), query=query, **fields)


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


def json_response(
    status: int, payload: object, headers: list[tuple[str, str]] | None = None
) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return Response(
        status,
        [("Content-Type", "application/json"), *(headers or [])],
        body,
    )


def error_response(error: HttpError) -> Response:
    """The JSON body every error answer carries: ``{"error": {"status", "message"}}`` (and ``code``, if any)."""
    body: dict[str, object] = {"status": error.status, "message": error.message}
    if error.code is not None:
        body["code"] = error.code
    payload = {"error": body}
    return json_response(error.status, payload, error.headers)


KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"}
)
SUPPORTED_VERSIONS = (b"1.0", b"1.1")


def check_request_head(
    method: bytes,
    target: bytes,
    http_version: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    max_target_bytes: int,
    max_head_bytes: int,
    max_body_bytes: int,
) -> None:
    """Refuse a parsed request head that h11 lets through but we must not serve.

    h11 checks the head size only while a head is incomplete, so a large head
    that arrives in one read is measured here as well.
    """
    if http_version not in SUPPORTED_VERSIONS:
        raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are spoken here")
    if len(target) > max_target_bytes:
        raise HttpError(414, "request target too long")
    # One pass over the headers (this runs for every request, each handshake included).
    head_bytes = len(method) + len(target) + 12
    content_length: list[bytes] = []
    chunked = False
    for name, value in headers:
        head_bytes += len(name) + len(value) + 4
        if name == b"content-length":
            content_length.append(value)
        elif name == b"transfer-encoding":
            chunked = True
    if head_bytes > max_head_bytes:
        raise HttpError(431, "request header fields too large")
    if method.decode("ascii", "replace") not in KNOWN_METHODS:
        raise HttpError(
            501, "method not implemented"
        )  # methods are case-sensitive (RFC 7230 §3.1.1)
    if content_length and chunked:
        # RFC 7230 §3.3.3 item 3: the classic request-smuggling ambiguity.
        raise HttpError(400, "both Content-Length and Transfer-Encoding")
    for value in content_length:
        if int(value) > max_body_bytes:
            raise HttpError(413, "request body too large")


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

    def __contains__(self, path: object) -> bool:
        """Whether any method is routed at ``path``."""
        return path in self._routes

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
