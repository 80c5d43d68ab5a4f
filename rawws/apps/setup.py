"""Wiring: the chat service, then the server API on the same server (what `rawws serve` runs).

Each part of the API is a module with ``add_calls(routes, context)``; ``CALLS``
lists them, so a part is mounted by naming it here once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from rawws.apps import room_reads, rooms_calls
from rawws.apps.keys import ApiKey
from rawws.apps.routes import ApiRoutes, KeyLookup
from rawws.chat.app import ChatApp, setup_app
from rawws.server.server import Server
from rawws.store.schema import api_keys


@dataclass(frozen=True, slots=True)
class ApiContext:
    """What every part of the API may use: the server (its config and router) and the chat it stands on."""

    server: Server
    app: ChatApp


#: The parts of the API, each ``add_calls(routes, context)``.
CALLS: tuple[Callable[[ApiRoutes, ApiContext], None], ...] = (
    rooms_calls.add_calls,
    room_reads.add_calls,
)


async def setup_service(server: Server) -> ChatApp:
    """The chat service and, on the same server, its API for applications."""
    app = await setup_app(server)
    context = ApiContext(server, app)
    routes = ApiRoutes(key_lookup(context), clock=time.monotonic)
    for add_calls in CALLS:
        add_calls(routes, context)
    routes.mount(server.router)
    return app


def key_lookup(context: ApiContext) -> KeyLookup:
    """The keys as the store has them (a cache of one second comes with the keys' store)."""

    async def lookup(key_id: str) -> ApiKey | None:
        # Stand-in until the keys' store lands (it replaces this whole function): one read.
        query = sa.select(api_keys).where(api_keys.c.id == key_id)
        async with context.app.store.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return ApiKey(
            row.id,
            row.name,
            row.secret_hash,
            frozenset(row.scopes.split(",")),
            tuple(r for r in row.rooms.split(",") if r),
            row.per_s,
            row.burst,
            row.created_at,
            row.revoked_at,
        )

    return lookup
