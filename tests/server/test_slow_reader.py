"""A reader that stops reading costs the server a bounded amount, and the outbox bound is what decides.

The server-side socket's ``SO_SNDBUF`` is set (``send_buffer_bytes``), so the
kernel cannot absorb megabytes before the outbox fills; on overflow the queued
frames are dropped and the 1008 close frame is next in line; TCP is dropped
after ``close_timeout_s`` if the reader never reads it.
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import termios

import pytest

from rawws.server.connection import ServerConnection
from rawws.server.server import Server
from tests.conftest import StartServer
from tests.support.chat_client import (
    client_text_frame,
    connect_chat,
    new_users,
    raw_chat_socket,
)
from tests.support.helpers import TIMEOUT_S, wait_for_condition

KiB = 1024
OUTBOX_BYTES = 512 * KiB
SEND_BUFFER = 64 * KiB
HIGH_WATER = 64 * KiB
TEXT_CHARS = 4000


def kernel_queued(session: ServerConnection) -> int:
    """Bytes in the kernel's send queue of the session's socket (SIOCOUTQ, the same number as TIOCOUTQ)."""
    sock = session.transport.get_extra_info("socket")
    if sock is None or sock.fileno() < 0:
        return 0
    try:
        return struct.unpack(
            "i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
        )[0]
    except OSError:
        return 0


def held_by_server(session: ServerConnection) -> int:
    """What the slow reader costs the server right now: outbox + transport buffer + kernel send queue."""
    return (
        session.outbox.pending_bytes
        + session.transport.get_write_buffer_size()
        + kernel_queued(session)
    )


def slow_session(server: Server) -> ServerConnection | None:
    return next(
        (session for session in server.connections if session.user == "slow"), None
    )


@pytest.fixture
def no_rate_limit() -> dict[str, object]:
    """Settings for floods: the per-connection frame limit made huge."""
    return {"chat_message_burst": 10**9, "chat_messages_per_s": 10.0**9}


async def test_a_slow_reader_is_bounded_by_the_outbox_and_dropped_after_the_close_timeout(
    start_server: StartServer, no_rate_limit: dict[str, object]
) -> None:
    server = await start_server(
        **no_rate_limit,
        outbox_max_bytes=OUTBOX_BYTES,
        write_high_water_bytes=HIGH_WATER,
        send_buffer_bytes=SEND_BUFFER,
        ping_interval_s=0,  # the keepalive must not be what ends it
        close_timeout_s=2.0,
        logins_per_minute_per_address=100_000,
    )
    tokens = await new_users(server, "sender", "fast", "slow")
    sender = await connect_chat(server, tokens["sender"], "sender", keep_messages=False)
    fast = await connect_chat(server, tokens["fast"], "fast", keep_messages=False)
    await sender.join("lobby")
    await fast.join("lobby")
    slow = await raw_chat_socket(server.port, tokens["slow"])
    try:
        await slow.send(client_text_frame({"type": "join", "room": "lobby"}))
        await sender.wait_frame("presence", user="slow", event="joined")
        session = slow_session(server)
        assert session is not None
        sock = session.transport.get_extra_info("socket")
        # Linux doubles the value asked for (socket(7)); without the setting it autotunes to megabytes.
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) <= 2 * SEND_BUFFER

        peak = 0
        detected_at_bytes = 0
        sent = 0
        for i in range(4000):  # at most ~16 MB; the overflow comes long before
            await sender.say("lobby", f"m{i}:".ljust(TEXT_CHARS, "x"), ref=f"m{i}")
            sent += TEXT_CHARS
            if i % 16 == 15:
                await sender.wait_ack(f"m{i}", timeout=TIMEOUT_S)
                await asyncio.sleep(0)
            if session.outbox.overflowed:
                detected_at_bytes = sent
                break
            peak = max(peak, held_by_server(session))
        assert session.outbox.overflowed, (
            "the outbox never overflowed: something else absorbed the backlog"
        )
        assert server.counters.slow_consumers_closed == 1
        # Dropped at once: nothing queued behind which the close frame would wait.
        assert (
            session.outbox.pending_bytes <= 32
        )  # only the 1008 close frame (or nothing, once written)
        # the outbox and one message, the transport's two high-water marks and a frame, the kernel's
        bound = OUTBOX_BYTES + 2 * (TEXT_CHARS + 64) + 2 * HIGH_WATER + 2 * SEND_BUFFER
        assert peak <= bound, (
            f"a slow reader held {peak} bytes, more than the documented {bound}"
        )
        assert (
            detected_at_bytes <= bound + 16 * (TEXT_CHARS + 64) + 2 * 1024 * 1024
        )  # + what the reader's window took

        # The reader never reads: TCP is dropped after the close timeout, and the slot is free again.
        await wait_for_condition(
            lambda: slow_session(server) is None,
            timeout=TIMEOUT_S,
            what="the slow socket dropped",
        )
        # The fast reader got everything the sender had acked.
        last = int(sender.acks[f"m{i}"]["id"]) if f"m{i}" in sender.acks else None
        if last is not None:
            await fast.wait_message_id("lobby", last, timeout=TIMEOUT_S * 3)
        assert not fast.done
        print(
            f"slow reader: peak held {peak} bytes (bound {bound}); overflow after {detected_at_bytes} bytes sent"
        )
    finally:
        slow.close()
        await sender.close()
        await fast.close()
