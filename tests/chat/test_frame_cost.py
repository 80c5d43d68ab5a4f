"""Issue 20, item 1 on the chat: a signed-in client's compressed frames cost no more than the chat needs.

A chat frame is at most ``wire.MAX_FRAME_BYTES``. Before the fix ``/ws`` took
messages up to the server's limit (1 MiB), so each ~1 KiB compressed frame was
inflated to a megabyte and UTF-8-decoded before the chat's own frame rate
dropped it. Now ``/ws`` closes such a frame with 1009 once 64 KiB are inflated,
while ``/echo`` (the library's endpoint) still takes 1 MiB messages at the
connection's read budget. Real server, SQLite, real sockets.
"""

from __future__ import annotations

import asyncio

from rawws.chat import wire
from tests.support.helpers import (
    TIMEOUT_S,
    close_code,
    deflate_message,
    masked_frame,
    read_frame_full,
    read_http_head,
    registered_token,
    upgrade_request,
    wait_for_condition,
)

TEXT, CLOSE = 0x1, 0x8
MiB = 1024 * 1024
DEFLATE = "Sec-WebSocket-Extensions: permessage-deflate\r\n"


async def open_raw(
    port: int, path: str, extra: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(upgrade_request(path, extra=extra))
    status, _, _ = await read_http_head(reader, TIMEOUT_S)
    assert status == 101
    return reader, writer


async def test_a_compressed_frame_bigger_than_any_chat_command_is_closed_with_1009(
    start_server,
) -> None:
    server = await start_server()
    token = await registered_token(server.port, "mallory")
    reader, writer = await open_raw(
        server.port,
        "/ws",
        f"Authorization: Bearer {token}\r\nSec-WebSocket-Protocol: rawws.v1\r\n{DEFLATE}",
    )
    [connection] = [c for c in server.connections if c.path == "/ws"]
    bomb = masked_frame(TEXT, deflate_message(b" " * (MiB - 64)), rsv1=True)
    assert len(bomb) < 2048
    writer.write(bomb)
    while True:
        opcode, payload, _, _ = await read_frame_full(reader, TIMEOUT_S)
        if opcode == CLOSE:
            break
    assert close_code(payload) == 1009
    budget = connection.ws.read_budget
    assert budget is not None
    # One frame, inflated up to the chat's limit (and a slice past it at most), then the close.
    assert budget.bytes_spent <= wire.MAX_FRAME_BYTES
    writer.close()


async def test_echo_still_takes_a_megabyte_message_compressed(start_server) -> None:
    server = await start_server()
    reader, writer = await open_raw(server.port, "/echo", DEFLATE)
    message = b"b" * (MiB - 64)
    writer.write(masked_frame(TEXT, deflate_message(message), rsv1=True))
    opcode, payload, _, rsv1 = await read_frame_full(reader, TIMEOUT_S)
    assert opcode == TEXT and rsv1
    [connection] = [c for c in server.connections if c.path == "/echo"]
    await wait_for_condition(
        lambda: (
            connection.ws.read_budget is not None
            and connection.ws.read_budget.bytes_spent == len(message)
        )
    )
    writer.close()
