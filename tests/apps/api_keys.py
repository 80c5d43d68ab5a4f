"""Test helpers of the server API: a key inserted straight into ``api_keys`` (the key store's
CLI is another part's), and a call made over plain HTTP as a backend makes it."""

from __future__ import annotations

import time

from rawws.apps.keys import SCOPES, new_key
from rawws.server.server import Server
from rawws.store.schema import api_keys
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
    """A live key of ``scopes`` limited to ``rooms`` (none: every room): what a backend presents."""
    shown, key_id, secret_hash = new_key()
    row = dict(
        id=key_id,
        name=name,
        secret_hash=secret_hash,
        scopes=",".join(scopes),
        rooms=",".join(rooms),
        per_s=per_s,
        burst=burst,
        created_at=time.time(),
    )
    async with chat_handler(server).store.engine.begin() as conn:  # type: ignore[attr-defined]
        await conn.execute(api_keys.insert().values(**row))
    return shown


async def api(server: Server, key: str, call: str, body: object) -> Reply:
    """``POST /api/v1/<call>`` with ``body`` as JSON and the key as a bearer token."""
    return await http(
        server.port,
        "POST",
        f"/api/v1/{call}",
        body,
        headers={"Authorization": f"Bearer {key}"},
    )
