"""No frame costs more than it weighs (issue 20, items 1 and 3), over real sockets on loopback.

A client sends compressed frames of ~1 KiB that each inflate to ~1 MiB, all in
one write. The server must process them at the connection's read budget, not
as fast as they arrive: the bytes it has inflated stay within the budget's
burst + rate × the time that passed + a slice, another client is answered
while the attacker waits, and the attacker is slowed, not closed. A message
left half-sent is closed with 1008 once its time is up. The handlers count
what they got; the server-side connection's budget counts what it paid.
"""

from __future__ import annotations

import asyncio
import zlib

import pytest

import rawws
from rawws.core.budget import ReadBudget
from rawws.core.extensions import INFLATE_SLICE_BYTES
from rawws.server.connection import ServerConnection
from tests.support.helpers import (
    TIMEOUT_S,
    close_code,
    deflate_message,
    masked_frame,
    read_frame_full,
    read_http_head,
    upgrade_request,
    wait_for_condition,
)

TEXT, CONTINUATION, CLOSE, PING = 0x1, 0x0, 0x8, 0x9
MiB = 1024 * 1024
DEFLATE = "Sec-WebSocket-Extensions: permessage-deflate\r\n"


async def open_raw(
    port: int, extra: str = ""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(upgrade_request("/", extra=extra))
    status, _, _ = await read_http_head(reader, TIMEOUT_S)
    assert status == 101
    return reader, writer


class Counting:
    """A handler that echoes short messages and counts the long ones, keeping each connection."""

    def __init__(self) -> None:
        self.big: dict[ServerConnection, int] = {}

    async def __call__(self, connection: ServerConnection) -> None:
        async for message in connection:
            if len(message) < 100:
                await connection.send(message)
            else:
                self.big[connection] = self.big.get(connection, 0) + 1


async def test_compressed_frames_are_inflated_at_the_budget_and_others_are_answered_meanwhile(
    serve,
) -> None:
    """The attack of issue 20 on a library server: 40 frames of ~1 KiB → 40 MiB inflated, in one write.

    Before the fix all 40 were inflated as soon as they were read (a megabyte each, in one call),
    and the other client's echo came after them all.
    """
    rate = 8 * MiB
    handler = Counting()
    server = await serve(handler, inflate_bytes_per_second=rate)
    loop = asyncio.get_running_loop()
    victim_reader, victim_writer = await open_raw(server.port)
    reader, writer = await open_raw(server.port, DEFLATE)
    frame = masked_frame(TEXT, deflate_message(b"a" * (MiB - 64)), rsv1=True)
    assert len(frame) < 2048
    started = loop.time()
    writer.write(frame * 40)
    connection = await wait_for_condition(
        lambda: next(iter(handler.big), None), what="the first big message"
    )
    budget = connection.ws.read_budget
    assert budget is not None
    # Another client is answered while the attacker's frames wait for the budget.
    victim_writer.write(masked_frame(TEXT, b"hello"))
    assert (await read_frame_full(victim_reader, TIMEOUT_S))[:2] == (TEXT, b"hello")
    elapsed = loop.time() - started
    done = handler.big[connection]
    assert done < 40, "every frame was inflated at once"
    assert budget.bytes_spent <= budget.byte_capacity + rate * elapsed + (
        INFLATE_SLICE_BYTES
    ), (budget.bytes_spent, elapsed)
    # Slowed, not closed: the rest is inflated and delivered as the budget refills.
    await wait_for_condition(
        lambda: handler.big[connection] >= done + 2, what="more messages, later"
    )
    assert connection.close_code is None
    connection.abort()  # else shutdown waits for the close frame behind 30 MiB to inflate
    writer.close()
    victim_writer.close()


class CountingCallbacks:
    """The same as ``Counting`` as callbacks (no task, no inbox: the chat's kind of handler)."""

    def __init__(self) -> None:
        self.big: dict[ServerConnection, int] = {}
        self.closed: dict[ServerConnection, int] = {}

    def on_open(self, connection: ServerConnection) -> None:
        pass

    def on_message(self, connection: ServerConnection, data: str | bytes) -> None:
        if len(data) < 100:
            connection.send_nowait(data)
        else:
            self.big[connection] = self.big.get(connection, 0) + 1

    def on_close(self, connection: ServerConnection, code: int) -> None:
        self.closed[connection] = code


async def test_callbacks_are_paced_too_and_an_eof_waits_behind_the_held_frames(
    serve,
) -> None:
    """A callback handler: 20 bombs, then the client shuts its side. The frames are inflated at the
    budget while another client is answered, and every one is delivered before the EOF ends it."""
    rate = 8 * MiB
    handler = CountingCallbacks()
    server = await serve(handler, inflate_bytes_per_second=rate)
    loop = asyncio.get_running_loop()
    victim_reader, victim_writer = await open_raw(server.port)
    reader, writer = await open_raw(server.port, DEFLATE)
    frame = masked_frame(TEXT, deflate_message(b"a" * (MiB - 64)), rsv1=True)
    started = loop.time()
    writer.write(frame * 20)
    writer.write_eof()
    connection = await wait_for_condition(
        lambda: next(iter(handler.big), None), what="the first big message"
    )
    victim_writer.write(masked_frame(TEXT, b"hello"))
    assert (await read_frame_full(victim_reader, TIMEOUT_S))[:2] == (TEXT, b"hello")
    budget = connection.ws.read_budget
    assert budget is not None
    assert handler.big[connection] < 20, "every frame was inflated at once"
    assert budget.bytes_spent <= budget.byte_capacity + rate * (
        loop.time() - started
    ) + (INFLATE_SLICE_BYTES)
    await wait_for_condition(lambda: connection in handler.closed, what="the end")
    assert handler.big[connection] == 20
    assert handler.closed[connection] == 1006  # TCP ended without a close frame
    victim_writer.close()
    writer.close()


async def echo_four_big_messages(server_port: int, compression: str | None) -> None:
    """Four 512 KiB messages sent back to back, each echoed whole and in order."""
    async with rawws.connect(
        f"ws://127.0.0.1:{server_port}/", compression=compression
    ) as client:
        messages = [bytes([n]) * (512 * 1024) for n in range(4)]
        for message in messages:
            await client.send(message)
        echoes = [await asyncio.wait_for(client.recv(), TIMEOUT_S) for _ in messages]
        assert echoes == messages


class BudgetEcho:
    """An echo handler that keeps each connection's read budget, to read what was paid."""

    def __init__(self) -> None:
        self.budgets: list[ReadBudget] = []

    async def __call__(self, connection: ServerConnection) -> None:
        self.budgets.append(connection.ws.read_budget)
        async for message in connection:
            await connection.send(message)


async def test_an_honest_fast_client_is_slowed_down_and_gets_every_echo(serve) -> None:
    """Four compressed 512 KiB messages against a budget of 1 MiB a second: paused, never closed; all echoed."""
    echo = BudgetEcho()
    server = await serve(echo, inflate_bytes_per_second=MiB)
    await echo_four_big_messages(server.port, "deflate")
    (budget,) = echo.budgets
    assert budget.bytes_spent == 4 * 512 * 1024  # every inflated byte was paid for


async def test_a_plain_payload_costs_its_frames_not_its_bytes(serve) -> None:
    """Without compression the same four messages cost their frames and no bytes: TCP paces them."""
    echo = BudgetEcho()
    server = await serve(echo, inflate_bytes_per_second=1024, compression=None)
    await echo_four_big_messages(server.port, None)
    (budget,) = echo.budgets
    # four messages and the client's close frame; not one byte
    assert (budget.frames_spent, budget.bytes_spent) == (5, 0)


async def test_a_message_left_half_sent_is_closed_with_1008_when_its_time_is_up(
    serve,
) -> None:
    """Issue 20, item 3: a first fragment, then only pings answered; the message has a time limit."""
    server = await serve(Counting(), message_timeout=0.3, ping_interval=0.1)
    reader, writer = await open_raw(server.port, DEFLATE)
    text = ("\U0001f600" + "a" * (MiB - 200)).encode()
    writer.write(masked_frame(TEXT, deflate_message(text), fin=False, rsv1=True))
    while True:
        opcode, payload, _, _ = await read_frame_full(reader, TIMEOUT_S)
        if opcode == PING:
            writer.write(masked_frame(0xA, payload))  # a live peer: pings are answered
            continue
        break
    assert opcode == CLOSE
    assert close_code(payload) == 1008
    assert payload[2:] == b"message timeout"
    writer.close()


async def test_a_whole_fragmented_message_within_its_time_is_delivered(serve) -> None:
    server = await serve(Counting(), message_timeout=5.0)
    reader, writer = await open_raw(server.port)
    writer.write(masked_frame(TEXT, "é".encode()[:1], fin=False))
    writer.write(masked_frame(CONTINUATION, "é".encode()[1:] + b"!"))
    assert (await read_frame_full(reader, TIMEOUT_S))[:2] == (TEXT, "é!".encode())
    writer.close()


@pytest.mark.parametrize("compression", ["deflate", "dedicated"])
async def test_many_compressed_fragmented_messages_come_back_whole_under_the_budget(
    serve, compression: str
) -> None:
    """Like Autobahn 12.x: 100 compressed messages of 128 KiB (each on its own when the server asks
    for client_no_context_takeover, one context across them in dedicated mode), each cut into
    256-byte frames, all sent at once: every message is echoed whole and in order, and nobody is
    closed (the inflater's slices and the budget's pauses change nothing but the pace)."""

    async def echo(connection: ServerConnection) -> None:
        async for message in connection:
            await connection.send(message)

    server = await serve(
        echo,
        compression=compression,
        max_message_size=64 * MiB,
        # 12.5 MiB and ~400 frames against bursts of 0.5 MiB and 25 frames: both budgets pause it
        inflate_bytes_per_second=8 * MiB,
        read_frames_per_second=400,
    )
    takeover = compression == "dedicated"
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    inflater = zlib.decompressobj(-15)
    reader, writer = await open_raw(server.port, DEFLATE)
    words = [f"word{n % 97} " * (n % 7 + 1) for n in range(4000)]
    messages = []
    wire = bytearray()
    for n in range(100):
        text = "".join(words[n:] + words[:n])[: 128 * 1024]
        messages.append(text)
        if not takeover:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        payload = compressor.compress(text.encode()) + compressor.flush(
            zlib.Z_SYNC_FLUSH
        )
        payload = payload[:-4]
        pieces = [payload[i : i + 256] for i in range(0, len(payload), 256)]
        for i, piece in enumerate(pieces):
            opcode = TEXT if i == 0 else CONTINUATION
            wire += masked_frame(opcode, piece, fin=i == len(pieces) - 1, rsv1=i == 0)
    writer.write(bytes(wire))
    for expected in messages:
        opcode, payload, fin, rsv1 = await read_frame_full(reader, TIMEOUT_S)
        assert opcode == TEXT and fin
        if rsv1:
            if not takeover:
                inflater = zlib.decompressobj(-15)
            payload = inflater.decompress(payload + b"\x00\x00\xff\xff")
        assert payload.decode() == expected
    [connection] = server.connections
    budget = connection.ws.read_budget
    assert budget is not None
    assert budget.bytes_spent == sum(len(m) for m in messages)
    assert connection.close_code is None
    writer.close()
