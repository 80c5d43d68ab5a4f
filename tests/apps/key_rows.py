"""API keys for the tests of streamed messages, made by the key store as `rawws api-key create` makes them."""

from __future__ import annotations

import time

from rawws.apps.keys import PUBLISH
from rawws.apps.routes import PREFIX
from rawws.server.server import Server
from rawws.store.sql import SqlStore
from tests.support.chat_client import chat_handler
from tests.support.helpers import Reply, http


async def live_key(
    server: Server,
    name: str,
    scopes: tuple[str, ...] = (PUBLISH,),
    rooms: tuple[str, ...] = (),
) -> str:
    """A key of ``server``'s store that its ``/api/v1`` accepts: the key as presented."""
    store = chat_handler(server).store
    assert isinstance(store, SqlStore)
    shown, _ = await store.create_api_key(
        name, frozenset(scopes), rooms, 10_000.0, 10_000, time.time()
    )
    return shown


async def api(port: int, key: str, call: str, **body: object) -> Reply:
    """``POST /api/v1/<call>`` with ``body``, as an application sends it."""
    return await http(
        port, "POST", PREFIX + call, body, headers={"Authorization": f"Bearer {key}"}
    )
