"""Wiring: the chat service, then the server API on the same server (what `rawws serve` runs).

Each part of the API is a module with ``add_calls(routes, context)``; ``CALLS``
lists them, so a part is mounted by naming it here once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rawws.apps import publish, room_reads, rooms_calls, streams
from rawws.apps.key_book import KeyBook
from rawws.apps.keys import ApiKey
from rawws.apps.openapi import add_document
from rawws.apps.routes import ApiRoutes, KeyLookup
from rawws.chat.app import ChatApp, setup_app
from rawws.server.server import Server
from rawws.transports.setup import add_transports


@dataclass(frozen=True, slots=True)
class ApiContext:
    """What every part of the API may use: the server (its config and router) and the chat it stands on."""

    server: Server
    app: ChatApp


#: The parts of the API, each ``add_calls(routes, context)``.
CALLS: tuple[Callable[[ApiRoutes, ApiContext], None], ...] = (
    publish.add_calls,
    rooms_calls.add_calls,
    room_reads.add_calls,
    streams.add_calls,
)


async def setup_service(server: Server) -> ChatApp:
    """The chat service (over WebSocket, SSE and long-polling) and, on the same server, its API
    for applications."""
    app = await setup_app(server)
    add_transports(server, app)
    context = ApiContext(server, app)
    routes = ApiRoutes(key_lookup(context), clock=time.monotonic)
    for add_calls in CALLS:
        add_calls(routes, context)
    routes.mount(server.router)
    add_document(server.router)
    return app


def key_lookup(context: ApiContext) -> KeyLookup:
    """The keys as the store has them, each cached for a second (``rawws.apps.key_book``)."""
    store, health = context.app.store, context.app.health

    async def read(key_id: str) -> ApiKey | None:
        return await health.call("reading an API key", store.api_key(key_id))

    return KeyBook(read).lookup
