"""What a WebSocket path is to the server: how its handshake is judged, who may connect, who handles it.

A handler is one of two kinds (docs/api.md):

* a coroutine function, ``async def handler(connection)``: it runs as a task
  for the life of the connection, reads with ``recv()`` or ``async for`` and
  writes with ``await send()`` (``rawws.serve`` takes this kind, or the next);
* a ``WebSocketHandler``: ``on_open``, ``on_message``, ``on_close``, called in
  the loop turn a frame arrives in, with no task per connection: the
  low-level fast path the chat is built on. It must never await a peer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeAlias

from rawws.aio.inbox import DEFAULT_MAX_QUEUE
from rawws.core.handshake import UpgradePolicy
from rawws.core.http import Request, Response

if TYPE_CHECKING:
    from rawws.server.connection import ServerConnection


class Identity(Protocol):
    """Who a credential speaks for, as the server needs it: the per-user connection limit and the log
    lines take ``user``; the connection is closed with 1008 at ``expires_at`` (epoch seconds). The app's
    authenticator returns its own richer object (the chat's is ``rawws.accounts.tokens.Identity``)."""

    @property
    def user(self) -> str: ...

    @property
    def expires_at(self) -> float | None: ...


class WebSocketHandler(Protocol):
    """Callbacks for each connection of an endpoint, run synchronously: they must never await a peer."""

    def on_open(self, connection: ServerConnection) -> None: ...

    def on_message(self, connection: ServerConnection, data: str | bytes) -> None: ...

    def on_close(self, connection: ServerConnection, code: int) -> None: ...


#: ``async def handler(connection)``: the whole life of one connection; it is closed when this returns.
ConnectionHandler: TypeAlias = "Callable[[ServerConnection], Awaitable[None]]"
#: Who the credential of a request speaks for; raises ``HttpError`` (401, 403) to refuse before the 101.
Authenticator = Callable[[Request], Identity | Awaitable[Identity]]
#: Looks at a request before the handshake: a ``Response`` is sent instead of the 101, ``None`` goes on.
ProcessRequest = Callable[[Request], Response | None | Awaitable[Response | None]]


def is_callback_handler(handler: object) -> bool:
    """A ``WebSocketHandler`` (callbacks) rather than a coroutine function."""
    return hasattr(handler, "on_message")


@dataclass(frozen=True, slots=True)
class WebSocketEndpoint:
    """A path that upgrades: how to judge the handshake, who may connect, who handles the connection."""

    policy: UpgradePolicy
    handler: WebSocketHandler | ConnectionHandler
    authenticate: Authenticator | None = None
    process_request: ProcessRequest | None = None
    #: Messages waiting for a coroutine handler's ``recv()``; then the socket is not read.
    max_queue: int = DEFAULT_MAX_QUEUE
    #: Whether ``connection.request`` keeps the request's headers for the connection's life. An
    #: endpoint whose handler never reads them lets them go once the upgrade is done: with the
    #: bearer token, the key and the host, they are about a kilobyte of every open connection.
    keep_headers: bool = True
