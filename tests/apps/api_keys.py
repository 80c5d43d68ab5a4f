"""Test helpers of the server API: a key made by the key store, and a call made over plain
HTTP as a backend makes it."""

from __future__ import annotations

import time

from rawws.apps.keys import SCOPES
from rawws.server.server import Server
from tests.support.chat_client import chat_handler
from tests.support.helpers import Reply, http


async def insert_key(
    server: Server,
    name: str,
    scopes: tuple[str, ...] = SCOPES,
    rooms: tuple[str, ...] = (),
    *,
    per_s: float = 1000.0,
    burst: int = 1000,
) -> str:
    """A live key of ``scopes`` limited to ``rooms`` (none: every room), made by the key store
    as `rawws api-key create` makes one: what a backend presents."""
    store = chat_handler(server).store
    shown, _ = await store.create_api_key(  # type: ignore[attr-defined]
        name, frozenset(scopes), rooms, per_s, burst, time.time()
    )
    return str(shown)


async def api(server: Server, key: str, call: str, body: object) -> Reply:
    """``POST /api/v1/<call>`` with ``body`` as JSON and the key as a bearer token."""
    return await http(
        server.port,
        "POST",
        f"/api/v1/{call}",
        body,
        headers={"Authorization": f"Bearer {key}"},
    )
