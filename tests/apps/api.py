"""Helpers of the server API's tests: keys made in the server's own database, calls over HTTP."""

from __future__ import annotations

import time

import jsonschema

from rawws.apps.keys import ApiKey
from rawws.apps.openapi import ERROR
from rawws.chat.app import open_app_store
from rawws.server.server import Server
from tests.support.helpers import Reply, http


async def make_key(
    server: Server,
    name: str,
    *scopes: str,
    rooms: tuple[str, ...] = (),
    per_s: float = 1000.0,
    burst: int = 1000,
) -> tuple[str, ApiKey]:
    """A key in ``server``'s database, as `rawws api-key create` makes one: (the key, its row)."""
    store = await open_app_store(server.config)
    try:
        return await store.create_api_key(
            name, frozenset(scopes), rooms, per_s, burst, time.time()
        )
    finally:
        await store.close()


async def revoke_key(server: Server, name: str) -> None:
    store = await open_app_store(server.config)
    try:
        assert await store.revoke_api_key(name, time.time())
    finally:
        await store.close()


async def call(
    server: Server | int,
    name: str,
    payload: object = None,
    key: str | None = None,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """``POST /api/v1/<name>`` with ``key`` as the bearer."""
    port = server if isinstance(server, int) else server.port
    all_headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    if body is not None:
        all_headers["Content-Type"] = "application/json"
    all_headers.update(headers or {})
    return await http(
        port, "POST", f"/api/v1/{name}", payload, body=body, headers=all_headers
    )


def error_code(reply: Reply) -> str:
    """The ``code`` of an error answer, checked to be the API's error shape."""
    assert reply.headers.get("content-type", "").startswith("application/json"), reply
    jsonschema.validate(reply.json, ERROR)
    error = reply.json["error"]
    assert set(error) == {"status", "code", "message"}, error
    assert error["status"] == reply.status
    return str(error["code"])
