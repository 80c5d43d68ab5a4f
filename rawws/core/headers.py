"""Parsing of the comma- and semicolon-separated header values WebSocket uses (RFC 7230 §3.2.6)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from rawws.errors import HeaderSyntaxError

Headers = list[tuple[bytes, bytes]]

#: The names and values nearly every upgrade request carries, one bytes object each for the whole
#: process. A request's headers stay with its connection for its life (``request.headers``): a
#: node of 100,000 connections would otherwise hold 100,000 copies of ``b"sec-websocket-key"``.
_SHARED: dict[bytes, bytes] = {
    name: name
    for name in (
        b"host", b"upgrade", b"connection", b"sec-websocket-key",
        b"sec-websocket-version", b"sec-websocket-extensions",
        b"sec-websocket-protocol", b"authorization", b"origin", b"user-agent",
        b"cookie", b"accept-encoding", b"accept-language", b"cache-control",
        b"pragma", b"x-forwarded-for", b"x-forwarded-proto", b"x-real-ip",
        b"websocket", b"Upgrade", b"13", b"no-cache", b"keep-alive, Upgrade",
        b"permessage-deflate; client_max_window_bits",
        b"gzip, deflate, br", b"gzip, deflate, br, zstd",
    )
}  # fmt: skip


def shared_headers(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    """``headers`` as a list, each common name and value the process's one copy of it."""
    shared = _SHARED.get
    return [(shared(name, name), shared(value, value)) for name, value in headers]


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PARAM = re.compile(rf"\s*({_TOKEN})\s*(?:=\s*({_TOKEN}|{_QUOTED})\s*)?")
_TOKEN_RE = re.compile(_TOKEN)


def is_token(text: str) -> bool:
    """Is ``text`` an RFC 7230 token (what header names, subprotocols and extension names are)?"""
    return _TOKEN_RE.fullmatch(text) is not None


def get_all(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[str]:
    """Every value of header ``name`` (lower-case, as h11 gives names), decoded as Latin-1."""
    return [value.decode("latin-1") for key, value in headers if key == name]


def by_name(headers: Iterable[tuple[bytes, bytes]]) -> dict[bytes, list[str]]:
    """Every header's values under its (lower-case) name, decoded as Latin-1, in one pass.

    For code that asks about several headers of one message: ``get_all`` per
    name walks the whole list each time.
    """
    values: dict[bytes, list[str]] = {}
    for key, value in headers:
        found = values.get(key)
        if found is None:
            values[key] = [value.decode("latin-1")]
        else:
            found.append(value.decode("latin-1"))
    return values


def comma_list(values: Iterable[str]) -> list[str]:
    """Split and join repeated header lines into one list of non-empty, trimmed items."""
    items: list[str] = []
    for value in values:
        items.extend(item.strip() for item in split_outside_quotes(value, ","))
    return [item for item in items if item]


def tokens(values: Iterable[str]) -> set[str]:
    """The lower-cased tokens of a comma list such as ``Connection: keep-alive, Upgrade``."""
    return {item.lower() for item in comma_list(values)}


def split_outside_quotes(text: str, separator: str) -> list[str]:
    """Split on ``separator`` except inside a quoted string."""
    if '"' not in text:
        return text.split(
            separator
        )  # nothing quoted (the usual case): no character walk needed
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if quoted:
        raise HeaderSyntaxError("unterminated quoted string")
    parts.append("".join(current))
    return parts


def parse_extension(item: str) -> tuple[str, list[tuple[str, str | None]]]:
    """Parse one extension offer ``name; p1; p2=v`` into its name and ordered parameters."""
    name, *raw_params = (part.strip() for part in split_outside_quotes(item, ";"))
    if not _TOKEN_RE.fullmatch(name):
        raise HeaderSyntaxError(f"bad extension name {name!r}")
    params: list[tuple[str, str | None]] = []
    for raw in raw_params:
        match = _PARAM.fullmatch(raw)
        if match is None:
            raise HeaderSyntaxError(f"bad extension parameter {raw!r}")
        key, value = match.group(1), match.group(2)
        if value is not None and value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params.append((key.lower(), value))
    return name.lower(), params
