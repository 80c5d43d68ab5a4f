"""The WebSocket edge after the hand-off: the session is the transport's protocol.

Bytes that arrive with or right behind the upgrade request, an EOF that came
before the hand-off, the write backpressure that pauses reading, and the one
flush per loop turn for pushes from outside a read.
"""

from __future__ import annotations

import asyncio
import socket

from rawws.server.connection import ServerConnection
from rawws.server.server import Server
from testkit import masked_frame
from tests.support.helpers import (
    close_code,
    read_frame_full,
    read_http_head,
    read_until_eof,
    upgrade_request,
)

TIMEOUT_S = 5.0
TEXT, BINARY, CLOSE = 0x1, 0x2, 0x8


async def test_frames_and_fin_in_the_same_write_as_the_request(
    echo_server: Server,
) -> None:
    """Request, three messages, a close frame and our FIN, all before the server read anything."""
    reader, writer = await asyncio.open_connection("127.0.0.1", echo_server.port)
    payloads = [b"one", b"two", b"three"]
    writer.write(
        upgrade_request()
        + b"".join(masked_frame(TEXT, p) for p in payloads)
        + masked_frame(CLOSE, (1000).to_bytes(2, "big"))
    )
    writer.write_eof()
    status, _, _ = await read_http_head(reader, TIMEOUT_S)
    assert status == 101
    for expected in payloads:
        assert await read_frame_full(reader, TIMEOUT_S) == (TEXT, expected, True, False)
    opcode, payload, _, _ = await read_frame_full(reader, TIMEOUT_S)
    assert (opcode, close_code(payload)) == (CLOSE, 1000)
    rest, closed = await read_until_eof(reader, TIMEOUT_S)
    assert closed and rest == b""
    writer.close()


async def test_a_burst_larger_than_one_read_behind_the_request(
    echo_server: Server,
) -> None:
    """More than the HTTP side reads at once arrives with the request: none of it is lost."""
    reader, writer = await asyncio.open_connection("127.0.0.1", echo_server.port)
    payloads = [bytes([i]) * 4000 for i in range(60)]  # 240 KB, several reads' worth
    writer.write(
        upgrade_request() + b"".join(masked_frame(BINARY, p) for p in payloads)
    )
    status, _, _ = await read_http_head(reader, TIMEOUT_S)
    assert status == 101
    for expected in payloads:
        opcode, payload, _, _ = await read_frame_full(reader, TIMEOUT_S)
        assert (opcode, payload) == (BINARY, expected)
    writer.close()


async def test_a_peer_that_stops_reading_pauses_the_session_and_resumes(
    start_server,
) -> None:
    """The transport's high-water mark pauses writing (and reading); draining resumes both."""
    server = await start_server(
        echo=True, write_high_water_bytes=16 * 1024, ping_interval_s=0
    )
    sock = socket.socket()
    sock.setsockopt(
        socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024
    )  # before connect: the window stays small
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, upgrade_request())
    head = b""
    while b"\r\n\r\n" not in head:
        head += await asyncio.wait_for(loop.sock_recv(sock, 4096), TIMEOUT_S)
    payload = bytes(60_000)
    sent = 0
    session: ServerConnection | None = None
    for _ in range(200):  # echoes pile up unread until the server pauses
        await loop.sock_sendall(sock, masked_frame(BINARY, payload))
        sent += 1
        await asyncio.sleep(0.002)
        (session,) = server.connections
        if session._paused:
            break
    assert session is not None and session._paused, "the session never paused writing"
    expected = sent * (4 + len(payload))
    received = len(head.partition(b"\r\n\r\n")[2])
    while received < expected:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), TIMEOUT_S)
        assert chunk, "the server closed instead of resuming"
        received += len(chunk)
    assert received == expected
    assert not session._paused
    sock.close()


async def test_pushes_from_outside_a_read_are_flushed_in_one_callback(
    echo_server: Server,
) -> None:
    """A fan-out to many sessions schedules one flush for all of them, and every frame goes out."""
    clients = []
    for _ in range(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", echo_server.port)
        writer.write(upgrade_request())
        status, _, _ = await read_http_head(reader, TIMEOUT_S)
        assert status == 101
        clients.append((reader, writer))
    loop = asyncio.get_running_loop()
    scheduled = 0
    call_soon = loop.call_soon

    def counting_call_soon(callback, *args, **kwargs):
        nonlocal scheduled
        scheduled += 1
        return call_soon(callback, *args, **kwargs)

    loop.call_soon = counting_call_soon  # type: ignore[method-assign]
    try:
        for session in list(echo_server.connections):
            assert session.send_nowait("to everyone")
    finally:
        loop.call_soon = call_soon  # type: ignore[method-assign]
    assert scheduled == 1
    for reader, writer in clients:
        assert await read_frame_full(reader, TIMEOUT_S) == (
            TEXT,
            b"to everyone",
            True,
            False,
        )
        writer.close()
