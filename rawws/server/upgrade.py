"""The upgrade: from a request on a WebSocket path to a running ``ServerConnection``, or a refusal.

In order: new WebSockets are refused during shutdown (503); the endpoint's
``process_request`` may answer instead; the handshake decision
(``rawws.core.handshake.decide_upgrade``, RFC 6455 §4.2); the authenticator
(401/403); the per-user and per-address limits (429). Every refusal is a plain
HTTP answer before any 101, on a connection that stays usable. Then the 101 is
queued to leave with the first frames, the bytes read past the request are
handed over, and the ``ServerConnection`` becomes the transport's protocol.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from rawws.core.extensions import PerMessageDeflate
from rawws.core.handshake import AcceptedUpgrade, decide_upgrade
from rawws.core.http import Request, Response, error_response
from rawws.core.protocol import WebSocket
from rawws.errors import HttpError
from rawws.server.connection import ServerConnection
from rawws.server.endpoint import Identity, ProcessRequest, WebSocketEndpoint

if TYPE_CHECKING:
    from rawws.server.http11 import HttpConnection

log = logging.getLogger("rawws.server")


def upgrade_now(
    http: HttpConnection, request: Request, endpoint: WebSocketEndpoint
) -> bool | Coroutine[Any, Any, bool]:
    """The upgrade, done here and now when no step of it waits (the usual case): ``True`` once it is a
    WebSocket, ``False`` when refused over HTTP; else the coroutine that finishes it (``process_request``,
    an authenticator that returns an awaitable, a limit counted across nodes), to be awaited in a task."""
    if endpoint.process_request is not None and not http.server.shutting_down:
        return upgrade(http, request, endpoint)
    return _checked(http, request, endpoint)


async def upgrade(
    http: HttpConnection, request: Request, endpoint: WebSocketEndpoint
) -> bool:
    """Answer a request for ``endpoint``: ``True`` once it is a WebSocket, ``False`` when refused over HTTP."""
    if endpoint.process_request is not None and not http.server.shutting_down:
        response = await _process_request(endpoint.process_request, request)
        if response is not None:
            http.server.counters.handshake(response.status)
            http.respond(response, request)
            return False
    outcome = _checked(http, request, endpoint)
    return outcome if isinstance(outcome, bool) else await outcome


def _checked(
    http: HttpConnection, request: Request, endpoint: WebSocketEndpoint
) -> bool | Coroutine[Any, Any, bool]:
    """Shutdown (503), the handshake (RFC 6455 §4.2), the authenticator (401/403), the limits (429):
    at once, or (what waits) in the coroutine returned."""
    server = http.server
    if server.shutting_down:
        # The open WebSockets were already told 1001; a new one would be left behind.
        _refused(http, request, HttpError(503, "server shutting down"))
        return False
    try:
        accepted = decide_upgrade(request, endpoint.policy)
        identity = endpoint.authenticate(request) if endpoint.authenticate else None
        if inspect.isawaitable(identity) or server.limits.shared is not None:
            return _admitted_later(http, request, endpoint, accepted, identity)
        release = server.limits.admit(
            identity.user if identity else None, request.peer
        )  # or 429
    except HttpError as error:
        _refused(http, request, error)
        return False
    _open(http, request, endpoint, accepted, identity, release)
    return True


async def _admitted_later(
    http: HttpConnection,
    request: Request,
    endpoint: WebSocketEndpoint,
    accepted: AcceptedUpgrade,
    identity: Identity | Awaitable[Identity] | None,
) -> bool:
    """The end of ``_checked`` for an identity still to come (e.g. a ticket spent in the store) or a
    limit counted where every node sees it."""
    try:
        if inspect.isawaitable(identity):
            identity = await identity
        release = await http.server.limits.admit_everywhere(
            identity.user if identity else None, request.peer
        )  # or 429
    except HttpError as error:
        _refused(http, request, error)
        return False
    _open(http, request, endpoint, accepted, identity, release)
    return True


def _refused(http: HttpConnection, request: Request, error: HttpError) -> None:
    log.debug(
        "upgrade refused peer=%s path=%s status=%d",
        request.peer,
        request.path,
        error.status,
    )
    http.server.counters.handshake(error.status)
    http.respond(error_response(error), request)


def _open(
    http: HttpConnection,
    request: Request,
    endpoint: WebSocketEndpoint,
    accepted: AcceptedUpgrade,
    identity: Identity | None,
    release: Callable[[], None],
) -> None:
    try:
        open_websocket(http, request, endpoint, accepted, identity, release)
    except BaseException:
        release()
        raise


async def _process_request(hook: ProcessRequest, request: Request) -> Response | None:
    """The hook's answer; an ``HttpError`` it raises is that answer, another exception a 500."""
    try:
        response = hook(request)
        if inspect.isawaitable(response):
            response = await response
    except HttpError as error:
        return error_response(error)
    except Exception:
        log.exception("process_request failed path=%s", request.path)
        return error_response(HttpError(500, "internal error"))
    return response


def open_websocket(
    http: HttpConnection,
    request: Request,
    endpoint: WebSocketEndpoint,
    accepted: AcceptedUpgrade,
    identity: Identity | None,
    release: Callable[[], None],
) -> ServerConnection:
    """Queue the 101 and hand the transport to a ``ServerConnection``; the HTTP task then ends."""
    server = http.server
    response, initial_data = http.switch_protocols(accepted.headers)
    ws = WebSocket(
        client=False,
        extensions=accepted.extensions,
        max_message_bytes=accepted.max_message_bytes,
    )
    # A stream's transport reads as well as writes (selector and SSL transports alike).
    connection = ServerConnection(
        http.transport,
        ws,
        endpoint.handler,
        server.config,
        request=request if endpoint.keep_headers else request.without_headers(),
        subprotocol=accepted.subprotocol,
        compressed=any(
            isinstance(ext, PerMessageDeflate) for ext in accepted.extensions
        ),
        counters=server.counters,
        identity=identity,
        user=identity.user if identity else None,
        expires_at=identity.expires_at if identity else None,
        max_queue=endpoint.max_queue,
        on_finished=server.connection_finished,
    )
    server.counters.websockets_opened += 1
    server.counters.handshake(101)
    server.connection_opened(connection, release)
    connection.start(initial_data, eof=http.at_eof, response=response)
    if connection.task is not None:
        server.track(connection.task)
    return connection
