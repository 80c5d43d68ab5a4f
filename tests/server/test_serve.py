"""``rawws.serve`` and the coroutine API of ``ServerConnection``, over real sockets on loopback.

The client side is ``rawws.connect`` where it is enough and raw frames where
the test is about bytes on the wire (what leaves in which order, what the
server reads and when).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from collections.abc import Awaitable, Callable

import pytest

import rawws
from rawws.config import ServerConfig
from rawws.core.http import Request, Response, json_response
from rawws.errors import (
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeRejected,
    HttpError,
    SettingError,
)
from rawws.server.connection import ServerConnection
from tests.support.helpers import (
    TIMEOUT_S,
    close_code,
    masked_frame,
    read_frame_full,
    read_http_head,
    read_until_eof,
    upgrade_request,
    wait_for_condition,
)

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
Handler = Callable[[ServerConnection], Awaitable[None]]


async def echo(connection: ServerConnection) -> None:
    async for message in connection:
        await connection.send(message)


async def raw_websocket(
    port: int, path: str = "/"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(upgrade_request(path))
    status, _, _ = await read_http_head(reader, TIMEOUT_S)
    assert status == 101
    return reader, writer


async def small_window_connection(
    port: int,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client that reads little at a time: a small receive window (set before connecting, or the kernel
    autotunes it to megabytes) and a stream reader that stops reading past a kilobyte."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=sock, limit=1024)


async def test_a_handler_sees_the_request_and_the_connection(serve) -> None:
    seen: list[object] = []

    async def handler(connection: ServerConnection) -> None:
        request = connection.request
        seen.extend(
            [
                request.path,
                request.query,
                request.header("X-Color"),
                connection.subprotocol,
                connection.remote_address[0],
            ]
        )
        await connection.send(await connection.recv())
        await connection.send(b"\x00binary")

    server = await serve(handler, subprotocols=["chat.v2", "chat.v1"])
    uri = f"ws://127.0.0.1:{server.port}/rooms/lobby?since=4"
    async with rawws.connect(
        uri, subprotocols=["chat.v1"], additional_headers={"X-Color": "blue"}
    ) as ws:
        assert ws.subprotocol == "chat.v1"
        await ws.send("hello")
        assert await ws.recv() == "hello"
        assert await ws.recv() == b"\x00binary"
        with pytest.raises(ConnectionClosedOK) as closed:
            await ws.recv()  # the handler returned: the server closes with 1000
        assert closed.value.code == 1000
    assert seen == ["/rooms/lobby", "since=4", "blue", "chat.v1", "127.0.0.1"]


async def test_every_path_upgrades_and_no_route_answers_plain_http(serve) -> None:
    server = await serve(echo)
    for path in ("/", "/healthz", "/any/thing"):
        async with rawws.connect(f"ws://127.0.0.1:{server.port}{path}") as ws:
            await ws.send(path)
            assert await ws.recv() == path
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, _ = await read_http_head(reader, TIMEOUT_S)
    assert status == 426 and headers["upgrade"] == "websocket"
    writer.close()


@pytest.mark.parametrize("kind", ["function", "coroutine"])
async def test_process_request_answers_before_the_101(serve, kind: str) -> None:
    def check(request: Request) -> Response | None:
        if request.path == "/health":
            return json_response(200, {"ok": True})
        if request.header("Authorization") != "Bearer open-sesame":
            return Response(403, [("Content-Type", "text/plain")], b"no entry\n")
        return None

    async def check_later(request: Request) -> Response | None:
        await asyncio.sleep(0)
        return check(request)

    server = await serve(
        echo, process_request=check if kind == "function" else check_later
    )
    uri = f"ws://127.0.0.1:{server.port}/"
    with pytest.raises(HandshakeRejected) as refused:
        await rawws.connect(uri)
    assert (refused.value.status, refused.value.body) == (403, b"no entry\n")
    async with rawws.connect(
        uri, additional_headers={"Authorization": "Bearer open-sesame"}
    ) as ws:
        await ws.send("in")
        assert await ws.recv() == "in"
    # A plain GET the hook answers; the connection stays usable for the next request.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    for _ in range(2):
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = await read_http_head(reader, TIMEOUT_S)
        assert (status, body) == (200, b'{"ok":true}')
    writer.close()


async def test_process_request_that_fails_is_a_500_or_its_http_error(
    serve, caplog: pytest.LogCaptureFixture
) -> None:
    def check(request: Request) -> Response | None:
        if request.path == "/teapot":
            raise HttpError(418, "short and stout")
        raise RuntimeError("a bug in the hook")

    server = await serve(echo, process_request=check)
    for path, status in (("/teapot", 418), ("/", 500)):
        with pytest.raises(HandshakeRejected) as refused:
            await rawws.connect(f"ws://127.0.0.1:{server.port}{path}")
        assert refused.value.status == status
    assert "process_request failed path=/" in caplog.text


async def test_a_handler_that_raises_closes_with_1011(
    serve, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(connection: ServerConnection) -> None:
        await connection.recv()
        raise ValueError("boom")

    server = await serve(handler)
    async with rawws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        await ws.send("go")
        with pytest.raises(ConnectionClosedError) as closed:
            await ws.recv()
        assert (closed.value.code, closed.value.reason) == (1011, "internal error")
    assert "ws handler failed" in caplog.text and "ValueError: boom" in caplog.text


async def test_the_peers_close_ends_async_for_or_raises_from_recv(serve) -> None:
    ends: list[tuple[str, object, object, object]] = []

    async def handler(connection: ServerConnection) -> None:
        try:
            async for _ in connection:
                pass
            ends.append(("async for ended", None, None, None))
            await connection.recv()
        except ConnectionClosedOK as closed:
            ends.append(("recv", closed.code, connection.close_code, None))
        try:
            await connection.send("too late")
        except ConnectionClosedOK as closed:
            ends.append(("send", closed.code, connection.close_reason, None))

    server = await serve(handler)
    ws = await rawws.connect(f"ws://127.0.0.1:{server.port}/")
    await ws.close(1001, "going")
    await wait_for_condition(lambda: len(ends) == 3, timeout=TIMEOUT_S, what="ends")
    assert ends == [
        ("async for ended", None, None, None),
        ("recv", 1001, 1001, None),
        ("send", 1001, "going", None),
    ]


async def test_an_error_close_raises_connection_closed_error_from_async_for(
    serve,
) -> None:
    raised: list[int] = []

    async def handler(connection: ServerConnection) -> None:
        try:
            async for _ in connection:
                pass
        except ConnectionClosedError as closed:
            raised.append(closed.code)

    server = await serve(handler)
    ws = await rawws.connect(f"ws://127.0.0.1:{server.port}/")
    await ws.close(4000, "app error")
    await wait_for_condition(lambda: raised == [4000], timeout=TIMEOUT_S, what="4000")


async def test_await_close_returns_once_the_connection_is_closed(serve) -> None:
    closed_at: list[object] = []

    async def handler(connection: ServerConnection) -> None:
        await connection.close(4001, "done here")
        closed_at.append(connection.transport.is_closing())
        closed_at.append(connection.close_code)
        closed_at.append(connection.close_reason)

    server = await serve(handler)
    async with rawws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        with pytest.raises(ConnectionClosedError) as closed:
            await ws.recv()
        assert closed.value.code == 4001
    await wait_for_condition(lambda: closed_at, timeout=TIMEOUT_S, what="the close")
    assert closed_at == [True, 4001, "done here"]


async def test_messages_that_came_before_the_close_are_still_read(serve) -> None:
    """The handler was busy; the peer sent three messages and closed; all three are read, then the end."""
    busy = asyncio.Event()
    read: list[object] = []

    async def handler(connection: ServerConnection) -> None:
        await busy.wait()
        async for message in connection:
            read.append(message)
        read.append(connection.close_code)

    server = await serve(handler)
    reader, writer = await raw_websocket(server.port)
    writer.write(
        b"".join(masked_frame(TEXT, m) for m in (b"a", b"b", b"c"))
        + masked_frame(CLOSE, (1000).to_bytes(2, "big"))
    )
    await asyncio.sleep(0.1)
    busy.set()
    opcode, payload, _, _ = await read_frame_full(reader, TIMEOUT_S)
    assert (opcode, close_code(payload)) == (CLOSE, 1000)
    assert read == ["a", "b", "c", 1000]
    writer.close()


async def test_replies_leave_before_the_pong_and_the_close_that_followed_their_messages(
    serve,
) -> None:
    """Message, ping, message, close in one write: echo, pong, echo, close, in that order."""
    server = await serve(echo)
    reader, writer = await raw_websocket(server.port)
    writer.write(
        masked_frame(TEXT, b"first")
        + masked_frame(PING, b"p")
        + masked_frame(TEXT, b"second")
        + masked_frame(CLOSE, (1000).to_bytes(2, "big"))
    )
    frames = [(await read_frame_full(reader, TIMEOUT_S))[:2] for _ in range(4)]
    assert frames == [
        (TEXT, b"first"),
        (PONG, b"p"),
        (TEXT, b"second"),
        (CLOSE, (1000).to_bytes(2, "big")),
    ]
    assert await read_until_eof(reader, TIMEOUT_S) == (b"", True)
    writer.close()


async def test_the_reply_precedes_the_close_a_bad_frame_causes(serve) -> None:
    """Like Autobahn 3.2: a message, then a frame with a reserved bit: the echo, then 1002."""
    server = await serve(echo, compression=None)
    reader, writer = await raw_websocket(server.port)
    writer.write(masked_frame(TEXT, b"fine") + masked_frame(TEXT, b"bad", rsv1=True))
    assert (await read_frame_full(reader, TIMEOUT_S))[:2] == (TEXT, b"fine")
    opcode, payload, _, _ = await read_frame_full(reader, TIMEOUT_S)
    assert (opcode, close_code(payload)) == (CLOSE, 1002)
    writer.close()


async def test_unread_messages_stop_the_server_reading_the_socket(serve) -> None:
    """At most ``max_queue`` messages wait for the handler; then the socket is not read (TCP pushes back)."""
    go = asyncio.Event()
    connections: list[ServerConnection] = []
    received: list[str | bytes] = []

    async def handler(connection: ServerConnection) -> None:
        connections.append(connection)
        await go.wait()
        async for message in connection:
            received.append(message)
            if len(received) == 200:
                await connection.send("all here")

    server = await serve(handler, max_queue=4)
    reader, writer = await raw_websocket(server.port)
    writer.write(b"".join(masked_frame(BINARY, bytes([i]) * 1000) for i in range(200)))
    (connection,) = connections
    await wait_for_condition(
        lambda: not connection.transport.is_reading(),
        timeout=TIMEOUT_S,
        what="reading paused",
    )
    assert len(connection._inbox or ()) == 4
    go.set()
    opcode, payload, _, _ = await read_frame_full(reader, TIMEOUT_S)
    assert (opcode, payload) == (TEXT, b"all here")
    assert received == [bytes([i]) * 1000 for i in range(200)]
    assert connection.transport.is_reading()
    writer.close()


async def test_everything_one_read_brought_is_queued_for_one_wake_up(serve) -> None:
    """Ten frames in one write: the handler, woken once, finds the other nine waiting."""
    waiting: list[int] = []

    async def handler(connection: ServerConnection) -> None:
        await connection.recv()
        waiting.append(len(connection._inbox or ()))

    server = await serve(handler)
    reader, writer = await raw_websocket(server.port)
    writer.write(b"".join(masked_frame(TEXT, b"%d" % i) for i in range(10)))
    await wait_for_condition(lambda: waiting, timeout=TIMEOUT_S, what="the handler")
    assert waiting == [9]
    writer.close()


async def test_a_read_that_fills_the_queue_exactly_does_not_stop_reading(
    serve,
) -> None:
    """Backpressure starts when more is left to parse than the queue takes, not when it is merely full."""
    go = asyncio.Event()
    connections: list[ServerConnection] = []

    async def handler(connection: ServerConnection) -> None:
        connections.append(connection)
        await go.wait()
        async for message in connection:
            await connection.send(message)

    server = await serve(handler, max_queue=4)
    reader, writer = await raw_websocket(server.port)
    writer.write(b"".join(masked_frame(TEXT, b"%d" % i) for i in range(4)))
    (connection,) = connections
    await wait_for_condition(
        lambda: len(connection._inbox or ()) == 4, timeout=TIMEOUT_S, what="4 queued"
    )
    for _ in range(20):
        await asyncio.sleep(0)
    assert connection.transport.is_reading()
    writer.write(
        masked_frame(TEXT, b"4")
    )  # one more than the queue takes: now it stops
    await wait_for_condition(
        lambda: not connection.transport.is_reading(),
        timeout=TIMEOUT_S,
        what="reading paused",
    )
    go.set()
    for i in range(5):
        assert (await read_frame_full(reader, TIMEOUT_S))[:2] == (TEXT, b"%d" % i)
    writer.close()


async def test_send_waits_while_the_reader_does_not_read(serve) -> None:
    """``await send()`` holds the handler while the socket is backed up: memory stays bounded, nothing dropped."""
    progress: list[int] = []
    config = ServerConfig(write_high_water_bytes=16 * 1024, send_buffer_bytes=16 * 1024)
    chunk = bytes(8 * 1024)

    async def handler(connection: ServerConnection) -> None:
        for i in range(400):  # 3.2 MB: far more than the buffers between us
            await connection.send(chunk)
            progress.append(i)

    server = await serve(handler, compression=None, config=config)
    reader, writer = await small_window_connection(server.port)
    writer.write(upgrade_request("/"))
    status, _, _ = await read_http_head(reader, TIMEOUT_S)
    assert status == 101
    await asyncio.sleep(0.3)  # not reading
    stalled_at = len(progress)
    assert 0 < stalled_at < 400, stalled_at
    (connection,) = server.connections
    assert (
        not connection.outbox.overflowed and server.counters.slow_consumers_closed == 0
    )
    for _ in range(400):
        opcode, payload, _, _ = await read_frame_full(reader, TIMEOUT_S)
        assert (opcode, payload) == (BINARY, chunk)
    assert len(progress) == 400
    writer.close()


async def test_broadcast_frames_once_and_compresses_once(
    serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain receivers get the very same bytes; receivers in shared compression one frame deflated once."""
    import rawws.core.deflate as deflate

    clients: list[ServerConnection] = []

    async def handler(connection: ServerConnection) -> None:
        clients.append(connection)
        await connection.wait_closed()

    deflations: list[bytes] = []
    real = deflate.deflate_message

    def counting(data: bytes, *args: int) -> bytes:
        deflations.append(data)
        return real(data, *args)

    monkeypatch.setattr(deflate, "deflate_message", counting)
    server = await serve(handler)  # compression="deflate": shared
    uri = f"ws://127.0.0.1:{server.port}/"
    compressed = [await rawws.connect(uri) for _ in range(3)]
    plain = [await rawws.connect(uri, compression=None) for _ in range(2)]
    await wait_for_condition(lambda: len(clients) == 5, timeout=TIMEOUT_S, what="5")
    assert rawws.broadcast(clients, "to all " * 20) == 5
    assert rawws.broadcast(server.connections, b"\x01binary too" * 10) == 5
    for ws in compressed + plain:
        assert await ws.recv() == "to all " * 20
        assert await ws.recv() == b"\x01binary too" * 10
    assert deflations == [("to all " * 20).encode(), b"\x01binary too" * 10]
    for ws in compressed + plain:
        await ws.close()


async def test_broadcast_never_waits_and_closes_a_reader_that_cannot_keep_up(
    serve,
) -> None:
    clients: list[ServerConnection] = []

    async def handler(connection: ServerConnection) -> None:
        clients.append(connection)
        await connection.wait_closed()

    config = ServerConfig(
        outbox_max_bytes=64 * 1024,
        write_high_water_bytes=16 * 1024,
        send_buffer_bytes=16 * 1024,
    )
    server = await serve(handler, compression=None, config=config)
    fast = await rawws.connect(f"ws://127.0.0.1:{server.port}/", max_queue=1000)
    reader, writer = await small_window_connection(server.port)
    writer.write(upgrade_request("/"))
    assert (await read_http_head(reader, TIMEOUT_S))[0] == 101
    await wait_for_condition(lambda: len(clients) == 2, timeout=TIMEOUT_S, what="2")
    message = "x" * 4000
    for i in range(500):  # 2 MB to each, in bursts the fast reader keeps up with
        rawws.broadcast(clients, message)
        if i % 10 == 9:
            for _ in range(10):
                assert await fast.recv() == message
    assert server.counters.slow_consumers_closed == 1
    slow = next(c for c in clients if c.close_code == 1008 or not c.open)
    assert slow.outbox.overflowed
    assert fast.queued_messages == 0 and not fast.closed
    await fast.close()
    writer.close()


async def test_close_and_serve_forever(serve) -> None:
    server = await rawws.serve(echo, "127.0.0.1", 0)
    serving = asyncio.create_task(server.serve_forever())
    ws = await rawws.connect(f"ws://127.0.0.1:{server.port}/")
    assert server.is_serving() and len(server.connections) == 1
    server.close()
    with pytest.raises(ConnectionClosedOK) as closed:
        await ws.recv()
    assert closed.value.code == 1001
    await asyncio.wait_for(server.wait_closed(), TIMEOUT_S)
    await asyncio.wait_for(serving, TIMEOUT_S)  # serve_forever returned
    assert not server.is_serving() and not server.connections


async def test_cancelling_serve_forever_closes_the_server() -> None:
    async with rawws.serve(echo, "127.0.0.1", 0) as server:
        serving = asyncio.create_task(server.serve_forever())
        ws = await rawws.connect(f"ws://127.0.0.1:{server.port}/")
        serving.cancel()
        with pytest.raises(ConnectionClosedOK):
            await ws.recv()
        with pytest.raises(asyncio.CancelledError):
            await serving
        assert not server.is_serving()


async def test_a_callback_handler_through_serve(serve) -> None:
    class Upper:
        def on_open(self, connection: ServerConnection) -> None:
            connection.send_nowait("welcome")

        def on_message(self, connection: ServerConnection, data: str | bytes) -> None:
            assert isinstance(data, str)
            connection.send_nowait(data.upper())

        def on_close(self, connection: ServerConnection, code: int) -> None:
            pass

    server = await serve(Upper())
    async with rawws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        assert await ws.recv() == "welcome"
        await ws.send("shout")
        assert await ws.recv() == "SHOUT"
        (connection,) = server.connections
        with pytest.raises(RuntimeError, match="callback handler"):
            await connection.recv()


async def test_two_tasks_may_not_wait_in_recv_at_once(serve) -> None:
    errors: list[str] = []

    async def handler(connection: ServerConnection) -> None:
        first = asyncio.create_task(connection.recv())
        await asyncio.sleep(0)
        try:
            await connection.recv()
        except RuntimeError as error:
            errors.append(str(error))
        await first

    server = await serve(handler)
    async with rawws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        await wait_for_condition(lambda: errors, timeout=TIMEOUT_S, what="error")
        await ws.send("for the first")
    assert errors == ["recv() is already waiting in another task"]


async def test_bad_settings_are_named_by_their_keyword() -> None:
    with pytest.raises(SettingError, match=r"^max_message_size=0: must be 1 byte"):
        rawws.serve(echo, "127.0.0.1", 0, max_message_size=0)
    with pytest.raises(SettingError, match=r"^close_timeout=-1"):
        rawws.serve(echo, "127.0.0.1", 0, close_timeout=-1)
    with pytest.raises(ValueError, match="compression='zstd'"):
        rawws.serve(echo, "127.0.0.1", 0, compression="zstd")
    with pytest.raises(ValueError, match="not an HTTP token"):
        rawws.serve(echo, "127.0.0.1", 0, subprotocols=["two words"])


async def test_the_server_logs_no_error_for_a_normal_life(
    serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "rawws.server")
    server = await serve(echo)
    async with rawws.connect(f"ws://127.0.0.1:{server.port}/x") as ws:
        await ws.send("hi")
        assert await ws.recv() == "hi"
    await wait_for_condition(
        lambda: not server.connections, timeout=TIMEOUT_S, what="gone"
    )
    assert [r.levelname for r in caplog.records] == ["INFO", "INFO"]
    assert "ws open" in caplog.records[0].message
    assert (
        "ws close" in caplog.records[1].message
        and "code=1000" in caplog.records[1].message
    )


async def test_an_endpoint_that_keeps_no_headers_lets_them_go_after_the_upgrade(
    serve,
) -> None:
    """``keep_headers=False``: the checks and ``authenticate`` read the headers; the open connection
    keeps its path, query and peer, and no longer references the header list or its values."""
    seen: dict[str, object] = {}

    class Identity:
        user = "ada"
        expires_at = None

    def authenticate(request: Request) -> Identity:
        seen["headers"] = request.headers
        assert request.header("X-Color") == "blue"
        return Identity()

    async def handler(connection: ServerConnection) -> None:
        seen["request"] = connection.request
        await connection.send(await connection.recv())

    async def keeps_all(connection: ServerConnection) -> None:
        seen["kept"] = connection.request.header("X-Color")
        await connection.send("kept")

    server = await serve(keeps_all)
    server.add_websocket(
        "/quiet", handler, authenticate=authenticate, keep_headers=False
    )
    async with rawws.connect(
        f"ws://127.0.0.1:{server.port}/quiet?since=4",
        additional_headers={"X-Color": "blue"},
    ) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
    request = seen["request"]
    assert isinstance(request, Request)
    assert (request.path, request.query) == ("/quiet", "since=4")
    assert request.peer.startswith("127.0.0.1:")
    assert request.headers == [] and request.header("X-Color") is None
    headers = seen["headers"]
    assert isinstance(headers, list) and headers  # what authenticate read, whole
    assert not any(kept is headers for kept in gc.get_referents(request))
    async with rawws.connect(
        f"ws://127.0.0.1:{server.port}/other", additional_headers={"X-Color": "red"}
    ) as ws:
        assert await ws.recv() == "kept"
    assert seen["kept"] == "red"  # the default endpoint keeps them
