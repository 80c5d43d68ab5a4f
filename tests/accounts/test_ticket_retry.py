"""A ticket refused with 503 "try again" is not spent: the retry the 503 asks for opens the connection.

The node used to put the ticket in its own ledger before asking the shared
record (Redis, or the store's ``spent_tickets``); when that was unreachable it
answered 503, and the retry found the ticket spent here: 401. Real servers, a
real ``redis-server`` killed and restarted, a real PostgreSQL database that
refuses connections for a while.
"""

from __future__ import annotations

import asyncio
import signal

import asyncpg
import sqlalchemy as sa

from rawws.server.server import Server
from tests.support.helpers import (
    TIMEOUT_S,
    close_writer,
    open_raw,
    read_http_head,
    registered_token,
    ticket,
    upgrade_request,
)
from tests.support.redis_server import RedisServer

SECRET = "ticket-retry-secret-" + "x" * 32


async def upgrade_status(server: Server, issued: str) -> tuple[int, bytes]:
    reader, writer = await open_raw(server.port)
    try:
        writer.write(
            upgrade_request(f"/ws?ticket={issued}", host=f"127.0.0.1:{server.port}")
        )
        status, _, body = await read_http_head(reader, TIMEOUT_S)
        return status, body
    finally:
        await close_writer(writer)


async def test_a_ticket_refused_while_redis_is_down_opens_on_the_retry(
    start_server, postgres_url: str, redis_server: RedisServer
) -> None:
    node = await start_server(
        db_url=postgres_url,
        bus_url=redis_server.url,
        jwt_secret=SECRET,
        bus_timeout_s=0.5,
    )
    token = await registered_token(node.port, "Ada")
    issued = (await ticket(node.port, token)).json["ticket"]
    redis_server.kill()
    status, body = await upgrade_status(node, issued)
    assert status == 503, body
    redis_server.start()
    status, body = await retried(node, issued)
    assert status == 101, body
    status, body = await upgrade_status(node, issued)
    assert status == 401, body  # spent now, once


async def retried(node: Server, issued: str) -> tuple[int, bytes]:
    """The upgrade retried while it is 503 "try again" (its Retry-After is 5 s; the node's
    breaker asks Redis again after 1 s), for up to 10 s."""
    for _ in range(100):
        status, body = await upgrade_status(node, issued)
        if status != 503:
            break
        await asyncio.sleep(0.1)
    return status, body


async def _allow_connections(postgres_url: str, allowed: bool) -> None:
    url = sa.engine.make_url(postgres_url)
    admin = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database="postgres"
    )
    try:
        await admin.execute(
            f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS {str(allowed).lower()}'
        )
        if not allowed:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                url.database,
            )
    finally:
        await admin.close()


async def test_a_ticket_refused_while_the_store_is_down_opens_on_the_retry(
    start_server, postgres_url: str
) -> None:
    node = await start_server(db_url=postgres_url, jwt_secret=SECRET)
    token = await registered_token(node.port, "Ada")
    issued = (await ticket(node.port, token)).json["ticket"]
    await _allow_connections(postgres_url, False)
    try:
        status, body = await upgrade_status(node, issued)
        assert status == 503, body
    finally:
        await _allow_connections(postgres_url, True)
    for _ in range(50):  # the pool may hand out a connection killed above first
        status, body = await upgrade_status(node, issued)
        if status != 503:
            break
        await asyncio.sleep(0.1)
    assert status == 101, body
    status, body = await upgrade_status(node, issued)
    assert status == 401, body


async def test_a_ticket_refused_while_redis_is_stalled_opens_on_the_retry(
    start_server, postgres_url: str, redis_server: RedisServer
) -> None:
    """The stalled Redis still holds the node's SET in its socket and runs it on waking:
    the node takes that spend back once Redis answers, before the client's retry."""
    node = await start_server(
        db_url=postgres_url,
        bus_url=redis_server.url,
        jwt_secret=SECRET,
        bus_timeout_s=0.5,
    )
    token = await registered_token(node.port, "Ada")
    issued = (await ticket(node.port, token)).json["ticket"]
    assert redis_server.process is not None
    redis_server.process.send_signal(signal.SIGSTOP)
    try:
        status, body = await upgrade_status(node, issued)
        assert status == 503, body
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    status, body = await retried(node, issued)  # the bus reconnects first
    assert status == 101, body
    status, body = await upgrade_status(node, issued)
    assert status == 401, body
