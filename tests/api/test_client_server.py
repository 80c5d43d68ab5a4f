"""``ApiClient`` against a real rawws server (in this process, SQLite), with a key made by
`rawws api-key create` on the server's data dir: over https, kept alive, reopened when the
server closed an idle connection, and the server's refusals as ``ApiError``.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from rawws.api import ApiClient, ApiError, Published
from tests.api.support import create_api_key
from tests.server.test_server_integration import tls_files as tls_files  # the fixture
from tests.support.chat_client import close_quietly, connect_chat, new_user

ROOM = "lobby"  # a public room once a user joined it; made with rooms_create over https


async def key_for(server, name: str = "backend", *scopes: str) -> str:
    env = {"RAWWS_DATA_DIR": str(server.config.data_dir)}
    flags = [flag for scope in scopes or ("publish",) for flag in ("--scope", scope)]
    return await create_api_key(name, *flags, env=env)


async def member_of_lobby(server) -> None:
    """A user who joined the lobby: the room exists (a publish into a room that does not is 404)."""
    ann = await connect_chat(server.port, await new_user(server.port, "ann"), "ann")
    await ann.join(ROOM)
    await close_quietly(ann)


async def test_publishes_over_https_share_one_connection(
    start_server, tls_files: tuple[Path, Path]
) -> None:
    cert, private = tls_files
    server = await start_server(tls_cert=str(cert), tls_key=str(private))
    key = await key_for(server, "backend", "publish", "rooms")
    trust = ssl.create_default_context(cafile=str(cert))
    async with ApiClient(f"https://127.0.0.1:{server.port}", key, tls=trust) as api:
        made = await api.rooms_create(ROOM, "feed")
        assert (made.room, made.kind) == (ROOM, "feed")
        sent = [await api.publish(ROOM, f"quote {n}") for n in range(5)]
        assert [p.duplicate for p in sent] == [False] * 5
        assert [p.id for p in sent] == sorted({p.id for p in sent})
        assert api.pool.opened == 1


async def test_an_idle_connection_the_server_closed_is_replaced(start_server) -> None:
    server = await start_server(keepalive_idle_s=0.2)
    await member_of_lobby(server)
    key = await key_for(server)
    async with ApiClient(f"http://127.0.0.1:{server.port}", key) as api:
        first = await api.publish(ROOM, "before the pause")
        await asyncio.sleep(0.6)  # the server closes the idle connection meanwhile
        second = await api.publish(ROOM, "after the pause")
        assert second.id > first.id
        assert api.pool.opened == 2


async def test_a_publish_sent_again_with_its_key_answers_the_first_id(
    start_server,
) -> None:
    server = await start_server()
    await member_of_lobby(server)
    key = await key_for(server)
    async with ApiClient(f"http://127.0.0.1:{server.port}", key) as api:
        first = await api.publish(ROOM, "once", "order-17")
        again = await api.publish(ROOM, "once", "order-17", retries=3)
        assert (first.duplicate, again) == (False, Published(ROOM, first.id, True))
        with pytest.raises(ApiError) as conflict:
            await api.publish(ROOM, "another body", "order-17", retries=3)
        assert (conflict.value.status, conflict.value.code) == (
            409,
            "idempotency_conflict",
        )


async def test_the_servers_refusals_are_api_errors(start_server) -> None:
    server = await start_server()
    key = await key_for(server)
    url = f"http://127.0.0.1:{server.port}"
    async with ApiClient(url, key[:-1] + ("A" if key[-1] != "A" else "B")) as api:
        with pytest.raises(ApiError) as refused:
            await api.publish(ROOM, "x")
        assert (refused.value.status, refused.value.code) == (401, "bad_key")
    async with ApiClient(url, key) as api:
        with pytest.raises(ApiError) as missing:
            await api.publish("no-such-room-here", "x")
        assert (missing.value.status, missing.value.code) == (404, "no_such_room")
    async with ApiClient(url, await key_for(server, "reader", "read")) as api:
        with pytest.raises(ApiError) as outside:
            await api.publish(ROOM, "x")
        assert (outside.value.status, outside.value.code) == (403, "scope")
