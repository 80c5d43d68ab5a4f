"""Where a ``--user`` client goes: the server's chat WebSocket and its HTTP login, from one URL.

``ws://``, ``wss://``, ``http://`` or ``https://`` ``host[:port]`` names the server;
the WebSocket is its ``/ws`` (or the path given) on the same host and port, and
``/auth/login`` and ``/auth/ticket`` are asked over ``http``/``https`` to match
``ws``/``wss``. Host, port and ``Host`` header come from the client handshake's own
``parse_uri``, so a chat URL and a WebSocket URL are read by one rule.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

from rawws.core.client_handshake import WebSocketURI, parse_uri
from rawws.errors import InvalidURI

CHAT_PATH = "/ws"
CREDENTIAL_PARAMS = ("token", "ticket")
#: the scheme typed → the WebSocket scheme it means (http:// names the same server as ws://)
CHAT_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}


@dataclass(frozen=True, slots=True)
class ChatTarget:
    """The server a ``--user`` client talks to: its HTTP endpoints and its chat WebSocket."""

    endpoint: WebSocketURI  # the chat WebSocket, without a query
    query: tuple[tuple[str, str], ...] = ()

    @property
    def secure(self) -> bool:
        return self.endpoint.secure

    @property
    def host(self) -> str:
        return self.endpoint.host

    @property
    def port(self) -> int:
        return self.endpoint.port

    @property
    def host_header(self) -> str:
        return self.endpoint.host_header

    @property
    def display(self) -> str:
        """``ws://host:port/ws``: what may be printed (never a ticket)."""
        return self.endpoint.display

    def ws_url(self, ticket: str) -> str:
        """The URL to open with a fresh ticket. Not to be printed or logged."""
        return self.display + "?" + urlencode([*self.query, ("ticket", ticket)])


def chat_target(url: str) -> ChatTarget:
    """``ws://host:port``, ``http://host:port``, ``wss://…``, ``https://…``, or a full ``ws://host:port/ws``.

    An empty path or ``/`` means ``/ws``; another path is used as the chat
    endpoint as given. A ``token`` or ``ticket`` in the query is refused:
    ``--user`` gets its own.
    """
    scheme, colon, rest = url.partition(":")
    ws_scheme = CHAT_SCHEMES.get(scheme.lower()) if colon else None
    if ws_scheme is None:
        raise InvalidURI(f"{url!r}: use ws://, wss://, http:// or https://HOST[:PORT]")
    if _has_user_info(url):
        raise InvalidURI(f"{url!r} has user info; use --user")
    uri = parse_uri(
        f"{ws_scheme}:{rest}"
    )  # host, port, fragment: the WebSocket URL rule
    path, _, query_string = uri.target.partition("?")
    query = tuple(parse_qsl(query_string, keep_blank_values=True))
    if any(name in CREDENTIAL_PARAMS for name, _ in query):
        raise InvalidURI(
            "--user logs in by itself: leave token= and ticket= out of the URL"
        )
    endpoint = dataclasses.replace(uri, target=path if path != "/" else CHAT_PATH)
    return ChatTarget(endpoint, query)


def _has_user_info(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False  # parse_uri says what is wrong with it
    return parts.username is not None or parts.password is not None


def url_credential(url: str) -> str | None:
    """``"token"`` or ``"ticket"`` when the URL's query carries one (the chat protocol is spoken), else ``None``."""
    try:
        query = urlsplit(url).query
    except ValueError:
        return None
    names = {name for name, _ in parse_qsl(query, keep_blank_values=True)}
    return next((name for name in CREDENTIAL_PARAMS if name in names), None)
