"""The server's HTTP phase: deadlines, keep-alive, pipelining, hand-off, shutdown.

Each connection speaks HTTP (h11 over the accepted transport) until it is closed
or becomes a WebSocket; these tests pin what that phase must do at its edges
(what a request pipelined behind another gets, when an idle or half-sent
request is cut off, what shutdown does to a connection between requests) and
that nothing of it outlives the upgrade.
"""

from __future__ import annotations

import asyncio
import gc
import socket

import h11
import pytest

from rawws.core.http import Request, Response, json_response
from rawws.server.echo import echo
from rawws.server.server import Server
from testkit import masked_frame
from tests.support.helpers import (
    ACCEPT,
    close_code,
    close_writer,
    open_raw,
    parse_http_response,
    read_frame,
    read_http_head,
    read_until_eof,
    upgrade_request,
)

TIMEOUT_S = 5.0
TEXT, CLOSE = 0x1, 0x8


@pytest.mark.parametrize("name", ["", "two words", "bad\r\nInjected: yes", "ünïcode"])
async def test_a_subprotocol_that_is_not_a_token_is_refused_at_registration(
    start_server, name: str
) -> None:
    """It may be echoed in a 101: a name that is not a token must never get that far."""
    server = await start_server()
    with pytest.raises(ValueError):
        server.add_websocket("/other", echo, subprotocols=(name,))


# -- keep-alive and pipelining ------------------------------------------------------------


async def test_upgrade_pipelined_behind_a_plain_request(echo_server: Server) -> None:
    """A plain request, an upgrade and a first frame in one write: 200, then 101, then the echo."""
    reader, writer = await open_raw(echo_server.port)
    try:
        writer.write(
            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
            + upgrade_request()
            + masked_frame(TEXT, b"right behind")
        )
        status, _, body = await read_http_head(reader, TIMEOUT_S)
        assert status == 200 and b'"status":"ok"' in body
        status, headers, _ = await read_http_head(reader, TIMEOUT_S)
        assert status == 101 and headers["sec-websocket-accept"] == ACCEPT
        assert await read_frame(reader, TIMEOUT_S) == (TEXT, b"right behind", True)
        writer.write(masked_frame(CLOSE, (1000).to_bytes(2, "big")))
        opcode, payload, _ = await read_frame(reader, TIMEOUT_S)
        assert (opcode, close_code(payload)) == (CLOSE, 1000)
    finally:
        await close_writer(writer)


async def test_refused_upgrade_leaves_the_connection_usable(
    echo_server: Server,
) -> None:
    """A handshake refused over HTTP is an ordinary answer: the next request on the connection is served."""
    reader, writer = await open_raw(echo_server.port)
    try:
        writer.write(upgrade_request(key="not base64!"))
        status, headers, _ = await read_http_head(reader, TIMEOUT_S)
        assert status == 400
        assert "close" not in headers.get("connection", "")
        writer.write(upgrade_request())
        status, headers, _ = await read_http_head(reader, TIMEOUT_S)
        assert status == 101 and headers["sec-websocket-accept"] == ACCEPT
    finally:
        await close_writer(writer)


async def test_idle_keepalive_connection_is_closed(start_server) -> None:
    server = await start_server(keepalive_idle_s=0.3, handshake_timeout_s=5.0)
    reader, writer = await open_raw(server.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        status, _, _ = await read_http_head(reader, TIMEOUT_S)
        assert status == 200
        data, closed = await read_until_eof(reader, 3.0)
        assert closed and data == b"", (
            "an idle keep-alive connection was kept (or answered) past its idle time"
        )
    finally:
        await close_writer(writer)


async def test_a_request_begun_on_a_kept_alive_connection_gets_the_handshake_deadline(
    start_server,
) -> None:
    """Between requests a connection may idle for ``keepalive_idle_s``; a started request must finish in time."""
    server = await start_server(keepalive_idle_s=30.0, handshake_timeout_s=0.4)
    reader, writer = await open_raw(server.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        status, _, _ = await read_http_head(reader, TIMEOUT_S)
        assert status == 200
        await asyncio.sleep(0.6)  # longer than the handshake deadline, idle: still open
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: loc")
        data, closed = await read_until_eof(reader, 3.0)
        assert closed
        status, headers, _, _ = parse_http_response(data)
        assert status == 408
        assert headers.get("connection") == "close"
    finally:
        await close_writer(writer)


async def test_client_that_half_closes_after_its_request_still_gets_the_answer(
    echo_server: Server,
) -> None:
    reader, writer = await open_raw(echo_server.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        writer.write_eof()
        data, closed = await read_until_eof(reader, TIMEOUT_S)
        assert closed
        status, _, body, _ = parse_http_response(data)
        assert status == 200 and b'"status":"ok"' in body
    finally:
        await close_writer(writer)


# -- the hand-off ---------------------------------------------------------------------------


async def test_an_open_websocket_keeps_nothing_of_its_http_phase(
    echo_server: Server,
) -> None:
    """After the 101 the session is the transport's protocol; the HTTP task and its h11 state are gone."""
    reader, writer = await open_raw(echo_server.port)
    try:
        writer.write(upgrade_request())
        status, _, _ = await read_http_head(reader, TIMEOUT_S)
        assert status == 101
        writer.write(masked_frame(TEXT, b"ping?"))
        assert await read_frame(reader, TIMEOUT_S) == (TEXT, b"ping?", True)
        gc.collect()
        alive = [o for o in gc.get_objects() if type(o) is h11.Connection]
        assert alive == []
        assert len(echo_server.connections) == 1
    finally:
        await close_writer(writer)


# -- shutdown -----------------------------------------------------------------------------------


async def test_shutdown_closes_a_connection_between_requests_at_once(
    start_server,
) -> None:
    server = await start_server(shutdown_timeout_s=10.0)
    reader, writer = await open_raw(server.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        status, _, _ = await read_http_head(reader, TIMEOUT_S)
        assert status == 200
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(server.shutdown(), TIMEOUT_S)
        assert asyncio.get_running_loop().time() - started < 2.0, (
            "shutdown waited on an idle connection"
        )
        data, closed = await read_until_eof(reader, TIMEOUT_S)
        assert closed and data == b""
    finally:
        await close_writer(writer)


async def test_shutdown_answers_the_request_under_way_then_closes(start_server) -> None:
    server = await start_server(shutdown_timeout_s=10.0)
    entered = asyncio.Event()

    async def slow(request: Request) -> Response:
        entered.set()
        await asyncio.sleep(0.3)
        return json_response(200, {"slow": True})

    server.router.add("GET", "/slow", slow)
    reader, writer = await open_raw(server.port)
    try:
        writer.write(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
        await asyncio.wait_for(entered.wait(), TIMEOUT_S)
        await asyncio.wait_for(server.shutdown(), TIMEOUT_S)
        data, closed = await read_until_eof(reader, TIMEOUT_S)
        assert closed
        status, headers, body, _ = parse_http_response(data)
        assert status == 200 and body == b'{"slow":true}'
        assert headers.get("connection") == "close"
    finally:
        await close_writer(writer)


async def test_shutdown_stops_accepting(start_server) -> None:
    server = await start_server()
    port = server.port
    await asyncio.wait_for(server.shutdown(), TIMEOUT_S)
    with (
        pytest.raises(OSError),
        socket.create_connection(("127.0.0.1", port), timeout=1.0),
    ):
        pass


async def test_shutdown_drops_a_connection_whose_first_request_never_comes(
    start_server,
) -> None:
    """A connection still waiting for its first request holds shutdown for the shutdown timeout at most
    (not the handshake timeout), then it is dropped."""
    server = await start_server(shutdown_timeout_s=0.3, handshake_timeout_s=60.0)
    reader, writer = await open_raw(server.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\n")  # begun, never finished
        await writer.drain()
        await asyncio.sleep(0.1)
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(server.shutdown(), TIMEOUT_S)
        assert asyncio.get_running_loop().time() - started < 2.0, (
            "shutdown waited past its timeout for a request that never came"
        )
        _, closed = await read_until_eof(reader, TIMEOUT_S)
        assert closed, "the waiting connection outlived the shutdown"
    finally:
        await close_writer(writer)


async def test_an_upgrade_completed_during_shutdown_is_refused_with_503(
    start_server,
) -> None:
    """Shutdown has already closed the open WebSockets: a new one would be left behind."""
    server = await start_server(shutdown_timeout_s=10.0)
    reader, writer = await open_raw(server.port)
    try:
        request = upgrade_request()
        writer.write(request[:-2])  # all but the blank line: the request is under way
        await writer.drain()
        await asyncio.sleep(0.1)
        shutdown = asyncio.create_task(server.shutdown())
        await asyncio.sleep(0.1)
        writer.write(request[-2:])
        data, closed = await read_until_eof(reader, TIMEOUT_S)
        assert closed
        status, headers, _, _ = parse_http_response(data)
        assert status == 503
        assert headers.get("connection") == "close"
        await asyncio.wait_for(shutdown, TIMEOUT_S)
        assert not server.connections
    finally:
        await close_writer(writer)
