"""A broadcast to readers that lag and then catch up: copies are bounded by the write, not by the lag.

Receivers with a small receive window stop reading while the sender
broadcasts about a megabyte; each receiver's socket and transport fill and the
rest waits in its outbox, as references to the one frame every receiver
shares. When they read again, the outbox must leave a high-water mark at a
time: no write hands the transport more than that (or one frame), and the
transport's buffer (a copy per receiver) stays within two high-water marks
and a frame, however far behind the reader was. Every receiver still gets
every message, in order.
"""

from __future__ import annotations

import asyncio
import socket

import rawws
from rawws.config import ServerConfig
from rawws.server.connection import ServerConnection
from testkit import masked_frame
from tests.support.helpers import (
    TIMEOUT_S,
    read_frame_full,
    read_http_head,
    upgrade_request,
    wait_for_condition,
)

KiB = 1024
HIGH_WATER = 64 * KiB
MESSAGE = 16 * KiB
MESSAGES = 64  # 1 MiB behind, well under the outbox bound
RECEIVERS = 3
BINARY = 0x2


class Broadcast:
    """Every message to every other open connection (``rawws.broadcast``); each write recorded."""

    def __init__(self) -> None:
        self.sessions: dict[ServerConnection, None] = {}
        self.writes: dict[ServerConnection, list[tuple[int, int]]] = {}

    def on_open(self, session: ServerConnection) -> None:
        self.sessions[session] = None
        writes = self.writes[session] = []
        transport = session.transport
        write = transport.write

        def recorded(data: bytes) -> None:
            write(data)
            writes.append((len(data), transport.get_write_buffer_size()))

        transport.write = recorded  # type: ignore[method-assign]

    def on_message(self, session: ServerConnection, data: str | bytes) -> None:
        rawws.broadcast([s for s in self.sessions if s is not session], data)

    def on_close(self, session: ServerConnection, code: int) -> None:
        self.sessions.pop(session, None)


async def open_ws(
    port: int, rcvbuf: int = 0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket()
    if rcvbuf:  # before connect, so the window offered is small from the start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(upgrade_request("/"))
    status, _, _ = await read_http_head(reader, TIMEOUT_S)
    assert status == 101
    return reader, writer


async def test_a_reader_catching_up_is_written_a_high_water_mark_at_a_time(
    serve,
) -> None:
    handler = Broadcast()
    config = ServerConfig(
        outbox_max_bytes=4 * MESSAGES * MESSAGE,
        write_high_water_bytes=HIGH_WATER,
        send_buffer_bytes=64 * KiB,
    )
    server = await serve(handler, compression=None, config=config)
    receivers = [await open_ws(server.port, rcvbuf=16 * KiB) for _ in range(RECEIVERS)]
    _, sender = await open_ws(server.port)
    await wait_for_condition(
        lambda: len(handler.sessions) == RECEIVERS + 1,
        timeout=TIMEOUT_S,
        what="every connection open",
    )
    targets = list(handler.sessions)[:RECEIVERS]
    payloads = [i.to_bytes(4, "big") * (MESSAGE // 4) for i in range(MESSAGES)]
    for payload in payloads:
        sender.write(masked_frame(BINARY, payload))
    await sender.drain()
    await wait_for_condition(
        lambda: all(
            s.outbox.pending_bytes + s.transport.get_write_buffer_size()
            >= MESSAGES * MESSAGE // 2
            for s in targets
        ),
        timeout=TIMEOUT_S,
        what="half a megabyte waiting for each receiver",
    )

    for reader, _ in receivers:  # all of them catch up now
        for i, payload in enumerate(payloads):
            opcode, got, fin, _ = await read_frame_full(reader, TIMEOUT_S)
            assert (opcode, fin) == (BINARY, True)
            assert got == payload, f"message {i} out of order or damaged"

    frame = MESSAGE + 4  # a 16 KiB payload's header is 4 bytes
    for session in targets:
        writes = handler.writes[session]
        assert max(size for size, _ in writes) <= max(HIGH_WATER, frame), (
            "a write handed the transport more than a high-water mark of the backlog"
        )
        assert max(buffered for _, buffered in writes) <= 2 * HIGH_WATER + frame, (
            "the transport's copy of the backlog grew past its bound"
        )
        assert not session.outbox and session.outbox.pending_bytes == 0
    for _, writer in [*receivers, (None, sender)]:
        writer.close()
