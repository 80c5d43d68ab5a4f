"""API keys for the tests of the server API, written straight into the store's ``api_keys`` table.

The key store and ``rawws api-key create`` are another part of issue 23: until the
server's key lookup reads the table, ``live_key`` makes the server's ``/api/v1``
read it for the key just written (a plain read of the real table), so the calls are
tested through the real dispatch: key, scope, rate, body.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from rawws.apps.keys import PUBLISH, ApiKey, new_key
from rawws.apps.routes import PREFIX, ApiRoutes
from rawws.server.server import Server
from rawws.store.schema import api_keys
from rawws.store.sql import SqlStore
from tests.support.chat_client import chat_handler
from tests.support.helpers import Reply, http


async def insert_key(
    store: SqlStore,
    name: str,
    scopes: tuple[str, ...] = (PUBLISH,),
    rooms: tuple[str, ...] = (),
) -> tuple[str, str]:
    """A live key row named ``name``: (the key as presented, its id)."""
    presented, key_id, secret_hash = new_key()
    async with store.engine.begin() as conn:
        await conn.execute(
            api_keys.insert().values(
                id=key_id,
                name=name,
                secret_hash=secret_hash,
                scopes=",".join(scopes),
                rooms=",".join(rooms),
                per_s=10_000.0,
                burst=10_000,
                created_at=time.time(),
                revoked_at=None,
            )
        )
    return presented, key_id


def api_routes(server: Server) -> ApiRoutes:
    handler: Any = server.router.resolve("POST", PREFIX + "stream_open")
    routes = handler.__self__
    assert isinstance(routes, ApiRoutes)
    return routes


async def live_key(server: Server, name: str, **options: Any) -> str:
    """A key of ``server``'s store that its ``/api/v1`` accepts: the key as presented."""
    store = chat_handler(server).store
    assert isinstance(store, SqlStore)
    presented, key_id = await insert_key(store, name, **options)
    routes = api_routes(server)
    if await routes.lookup(key_id) is None:  # the groundwork's lookup: no key store yet
        routes.lookup = _table_lookup(store)
    return presented


def _table_lookup(store: SqlStore) -> Any:
    async def lookup(key_id: str) -> ApiKey | None:
        async with store.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id))
            ).first()
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


async def api(port: int, key: str, call: str, **body: object) -> Reply:
    """``POST /api/v1/<call>`` with ``body``, as an application sends it."""
    return await http(
        port, "POST", PREFIX + call, body, headers={"Authorization": f"Bearer {key}"}
    )
