"""The rawws client against real servers: the rawws server, an independent one (websockets), and raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import http
import os
import shutil
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate as WebsocketsDeflate,
)

import rawws
from rawws.client.connect import (
    ClientConnection,
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeRejected,
    InvalidHandshake,
    connect,
)
from rawws.core.handshake import accept_key
from tests.conftest import StartServer
from tests.support.helpers import wait_for_condition

WAIT_S = (
    10.0  # the bound on every wait in this module; nothing here should come near it
)

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# -- servers of our own making -------------------------------------------------------------


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[RawHandler], Awaitable[int]]]:
    """Start TCP servers on 127.0.0.1:0 that run ``handler(reader, writer)``; gives the port."""
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(handler: RawHandler) -> int:
        async def run(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            writers.append(writer)
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                await handler(reader, writer)

        server = await asyncio.start_server(run, "127.0.0.1", 0)
        servers.append(server)
        return server.sockets[0].getsockname()[1]

    yield start
    for writer in writers:
        writer.transport.abort()
    for server in servers:
        server.close()
        await asyncio.wait_for(server.wait_closed(), WAIT_S)


async def accept_upgrade(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, extra: bytes = b""
) -> None:
    """Read an upgrade request and answer 101, followed by ``extra`` in the same write."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
    key = next(
        line.split(b":", 1)[1].strip().decode()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n" + extra
    )


def server_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked frame, as a server sends it (RFC 6455 §5.2)."""
    length = len(payload)
    if length <= 125:
        return struct.pack("!BB", 0x80 | opcode, length) + payload
    if length <= 0xFFFF:
        return struct.pack("!BBH", 0x80 | opcode, 126, length) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, length) + payload


async def read_client_frame(
    reader: asyncio.StreamReader,
) -> tuple[int, bytes, bytes | None]:
    """One client frame: (opcode, unmasked payload, masking key or None when unmasked)."""
    first, second = await asyncio.wait_for(reader.readexactly(2), WAIT_S)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4) if second & 0x80 else None
    payload = await reader.readexactly(length)
    if mask is not None:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return first & 0x0F, payload, mask


# -- against the rawws server --------------------------------------------------------------------


async def test_text_and_binary_echo_through_the_rawws_server(start_server: StartServer):
    server = await start_server()
    async with rawws.connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
        await ws.send("héllo")
        assert await ws.recv() == "héllo"
        await ws.send(b"\x00\xff" * 5000)
        assert await ws.recv() == b"\x00\xff" * 5000
        await ws.send(bytearray(b"ba"))
        assert await ws.recv() == b"ba"
    assert ws.close_code == 1000


async def test_compression_is_negotiated_with_the_rawws_server_and_can_be_turned_off(
    start_server: StartServer,
):
    server = await start_server()
    url = f"ws://127.0.0.1:{server.port}/echo"
    async with connect(url) as ws:
        assert ws.compression is not None and ws.compression.startswith(
            "permessage-deflate"
        )
        (session,) = server.connections
        assert session.compressed
        big = "compressible " * 20000
        await ws.send(big)
        assert await ws.recv() == big
    async with connect(url, compression=None) as ws:
        assert ws.compression is None
        await wait_for_condition(lambda: len(server.connections) == 1, timeout=WAIT_S)
        (session,) = server.connections
        assert not session.compressed
        await ws.send("plain")
        assert await ws.recv() == "plain"


async def test_refused_upgrade_from_the_rawws_server_shows_the_status(
    start_server: StartServer,
):
    server = await start_server()
    with pytest.raises(HandshakeRejected) as info:
        await connect(f"ws://127.0.0.1:{server.port}/no-such-endpoint")
    assert info.value.status == 404
    assert b"no such resource" in info.value.body


async def test_server_shutdown_is_a_normal_close_with_1001(start_server: StartServer):
    server = await start_server()
    ws = await connect(f"ws://127.0.0.1:{server.port}/echo")
    await wait_for_condition(lambda: len(server.connections) == 1, timeout=WAIT_S)
    await asyncio.wait_for(server.shutdown(), WAIT_S)
    with pytest.raises(ConnectionClosedOK) as info:
        await asyncio.wait_for(ws.recv(), WAIT_S)
    assert info.value.code == 1001 == ws.close_code
    with pytest.raises(ConnectionClosedOK):
        await ws.send("too late")
    await ws.close()


async def test_a_message_over_our_limit_fails_with_1009(start_server: StartServer):
    server = await start_server()
    async with connect(f"ws://127.0.0.1:{server.port}/echo", max_size=1000) as ws:
        await ws.send("x" * 999)
        assert await ws.recv() == "x" * 999
        await ws.send("x" * 1001)  # the server takes it; its echo is too big for us
        with pytest.raises(ConnectionClosedError) as info:
            await asyncio.wait_for(ws.recv(), WAIT_S)
    assert info.value.code == 1009 == ws.close_code


async def test_a_message_over_the_servers_limit_reports_the_servers_1009(
    start_server: StartServer,
):
    """Our close and the server's cross: the code that ended it is the server's."""
    server = await start_server(max_message_bytes=1000)
    async with connect(f"ws://127.0.0.1:{server.port}/echo", compression=None) as ws:
        await ws.send("x" * 5000)
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(ws.recv(), WAIT_S)
    assert ws.close_code == 1009


async def test_async_for_ends_at_a_normal_close(start_server: StartServer):
    server = await start_server()
    ws = await connect(f"ws://127.0.0.1:{server.port}/echo")
    for text in ("a", "b", "c"):
        await ws.send(text)
    received = []
    async with asyncio.timeout(WAIT_S):
        async for message in ws:
            received.append(message)
            if len(received) == 3:
                await ws.close()
    assert received == ["a", "b", "c"]
    assert ws.close_code == 1000 and ws.closed
    with pytest.raises(ConnectionClosedOK):
        await ws.recv()


async def test_ping_resolves_with_the_round_trip_time(start_server: StartServer):
    server = await start_server()
    async with connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
        pong = await ws.ping()
        latency = await asyncio.wait_for(pong, WAIT_S)
        assert latency >= 0
        pong = await ws.ping(b"named")
        assert await asyncio.wait_for(pong, WAIT_S) >= 0


async def test_keepalive_pings_answered_keep_the_connection_open(
    start_server: StartServer,
):
    server = await start_server()
    async with connect(
        f"ws://127.0.0.1:{server.port}/echo", ping_interval=0.01, ping_timeout=0.5
    ) as ws:
        for n in range(5):  # each round trip leaves time for pings
            await asyncio.sleep(0.03)
            await ws.send(str(n))
            assert await asyncio.wait_for(ws.recv(), WAIT_S) == str(n)
        assert not ws.closed


# -- against an independent server (websockets) ------------------------------------------------


async def echo(connection: ServerConnection) -> None:
    async for message in connection:
        await connection.send(message)


async def test_text_and_binary_echo_through_websockets_with_compression_both_ways():
    connections: list[ServerConnection] = []

    async def handler(connection: ServerConnection) -> None:
        connections.append(connection)
        await echo(connection)

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            assert ws.compression is not None and ws.compression.startswith(
                "permessage-deflate"
            )
            (connection,) = connections
            assert any(
                isinstance(ext, WebsocketsDeflate)
                for ext in connection.protocol.extensions
            )
            text = "déjà vu " * 10000
            await ws.send(text)
            assert await ws.recv() == text
            await ws.send(os.urandom(70000))
            data = await ws.recv()
            assert isinstance(data, bytes) and len(data) == 70000
        async with connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
            assert ws.compression is None
            assert connections[1].protocol.extensions == []
            await ws.send("plain")
            assert await ws.recv() == "plain"


async def test_subprotocol_is_negotiated_with_websockets():
    async with serve(echo, "127.0.0.1", 0, subprotocols=["rawws.v1"]) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(
            f"ws://127.0.0.1:{port}/", subprotocols=["other", "rawws.v1"]
        ) as ws:
            assert ws.subprotocol == "rawws.v1"


async def test_extra_headers_reach_the_server():
    seen: list[str | None] = []

    def process_request(connection: ServerConnection, request):  # type: ignore[no-untyped-def]
        seen.append(request.headers.get("Authorization"))

    async with serve(echo, "127.0.0.1", 0, process_request=process_request) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(
            f"ws://127.0.0.1:{port}/",
            additional_headers={"Authorization": "Bearer t0ken"},
        ):
            pass
    assert seen == ["Bearer t0ken"]


async def test_refused_upgrade_raises_with_status_401_and_the_body():
    def refuse(connection: ServerConnection, request):  # type: ignore[no-untyped-def]
        return connection.respond(http.HTTPStatus.UNAUTHORIZED, "token required\n")

    async with serve(echo, "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(HandshakeRejected) as info:
            await connect(f"ws://127.0.0.1:{port}/")
    assert info.value.status == 401
    assert info.value.body == b"token required\n"
    assert "401" in str(info.value)


async def test_close_code_and_reason_reach_the_server():
    closed: asyncio.Future[tuple[int | None, str | None]] = (
        asyncio.get_running_loop().create_future()
    )

    async def handler(connection: ServerConnection) -> None:
        await connection.wait_closed()
        closed.set_result((connection.close_code, connection.close_reason))

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        ws = await connect(f"ws://127.0.0.1:{port}/")
        await ws.close(4000, "bye now")
        assert await asyncio.wait_for(closed, WAIT_S) == (4000, "bye now")
    assert ws.close_code == 4000
    with pytest.raises(ConnectionClosedError) as info:
        await ws.recv()
    assert info.value.code == 4000


async def test_server_close_with_an_error_code_raises_connection_closed_error():
    async def handler(connection: ServerConnection) -> None:
        await connection.send("last words")
        await connection.close(1011, "server broke")

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            assert (
                await ws.recv() == "last words"
            )  # what came before the close is still read
            with pytest.raises(ConnectionClosedError) as info:
                await asyncio.wait_for(ws.recv(), WAIT_S)
    assert (info.value.code, info.value.reason) == (1011, "server broke")


# -- against raw sockets: what a well-behaved server never does --------------------------------


async def test_keepalive_fails_with_1011_when_pongs_never_come(raw_server):
    async def never_pong(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await accept_upgrade(reader, writer)
        while await reader.read(1024):
            pass  # reads pings, answers nothing

    port = await raw_server(never_pong)
    ws = await connect(f"ws://127.0.0.1:{port}/", ping_interval=0.05, ping_timeout=0.1)
    with pytest.raises(ConnectionClosedError) as info:
        await asyncio.wait_for(ws.recv(), WAIT_S)
    assert info.value.code == 1011 == ws.close_code
    await asyncio.wait_for(ws.close(), WAIT_S)


async def test_the_101_and_the_first_frame_in_one_write(raw_server):
    async def eager(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept_upgrade(reader, writer, extra=server_frame(0x1, b"welcome"))
        await reader.read()

    port = await raw_server(eager)
    async with connect(f"ws://127.0.0.1:{port}/", close_timeout=0.2) as ws:
        assert await asyncio.wait_for(ws.recv(), WAIT_S) == "welcome"


async def test_every_client_frame_is_masked_with_a_fresh_key(raw_server):
    frames: asyncio.Queue[tuple[int, bytes, bytes | None]] = asyncio.Queue()

    async def record(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await accept_upgrade(reader, writer)
        while True:
            frames.put_nowait(await read_client_frame(reader))

    port = await raw_server(record)
    async with connect(
        f"ws://127.0.0.1:{port}/", compression=None, close_timeout=0.2
    ) as ws:
        await ws.send("one")
        await ws.send("one")
        first, second = [await asyncio.wait_for(frames.get(), WAIT_S) for _ in range(2)]
    assert first[:2] == second[:2] == (0x1, b"one")
    assert first[2] is not None and second[2] is not None and first[2] != second[2]


async def test_a_wrong_accept_value_fails_the_handshake(raw_server):
    async def liar(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        )
        await reader.read()

    port = await raw_server(liar)
    with pytest.raises(InvalidHandshake, match="Sec-WebSocket-Accept"):
        await connect(f"ws://127.0.0.1:{port}/")


async def test_a_server_that_never_answers_times_out(raw_server):
    async def silent(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read()

    port = await raw_server(silent)
    with pytest.raises(TimeoutError):
        await connect(f"ws://127.0.0.1:{port}/", open_timeout=0.1)


async def test_an_unanswered_close_is_dropped_after_the_close_timeout(raw_server):
    async def deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept_upgrade(reader, writer)
        await reader.read()

    port = await raw_server(deaf)
    ws = await connect(f"ws://127.0.0.1:{port}/", close_timeout=0.1)
    await asyncio.wait_for(ws.close(), WAIT_S)
    assert ws.close_timed_out
    assert ws.close_code == 1006


async def test_a_connection_lost_without_a_close_frame_is_1006(raw_server):
    async def vanish(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await accept_upgrade(reader, writer)
        writer.close()

    port = await raw_server(vanish)
    ws = await connect(f"ws://127.0.0.1:{port}/")
    with pytest.raises(ConnectionClosedError) as info:
        await asyncio.wait_for(ws.recv(), WAIT_S)
    assert info.value.code == 1006


async def test_an_unread_receive_queue_stops_reading_instead_of_growing(raw_server):
    """Backpressure: with nobody calling recv(), at most max_queue messages wait; TCP holds the rest."""
    total = 2000
    flood = b"".join(server_frame(0x1, f"message {n}".encode()) for n in range(total))

    async def flooder(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await accept_upgrade(reader, writer, extra=flood)
        await writer.drain()
        await reader.read()

    port = await raw_server(flooder)
    ws = await connect(
        f"ws://127.0.0.1:{port}/", max_queue=8, compression=None, close_timeout=0.2
    )
    await wait_for_condition(lambda: ws.queued_messages >= 8, timeout=WAIT_S)
    for _ in range(50):  # many event-loop turns with data waiting on the socket
        await asyncio.sleep(0)
    assert ws.queued_messages == 8
    assert ws.transport is not None and not ws.transport.is_reading()

    received = [await asyncio.wait_for(ws.recv(), WAIT_S) for _ in range(total)]
    assert received == [f"message {n}" for n in range(total)]
    await ws.close()


async def test_a_reply_to_a_message_leaves_before_the_close_a_later_bad_frame_causes(
    raw_server,
):
    """Frames after a message are handled only once the waiting reader had its turn."""
    frames: asyncio.Queue[tuple[int, bytes, bytes | None]] = asyncio.Queue()

    async def message_then_garbage(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await accept_upgrade(
            reader, writer, extra=server_frame(0x1, b"hi") + server_frame(0x3, b"")
        )
        while True:
            frames.put_nowait(await read_client_frame(reader))

    port = await raw_server(message_then_garbage)
    ws = await connect(f"ws://127.0.0.1:{port}/", compression=None, close_timeout=0.2)
    await ws.send(await ws.recv())
    with pytest.raises(ConnectionClosedError):
        await asyncio.wait_for(ws.recv(), WAIT_S)
    echo_frame = await asyncio.wait_for(frames.get(), WAIT_S)
    close_frame = await asyncio.wait_for(frames.get(), WAIT_S)
    assert echo_frame[:2] == (0x1, b"hi")
    assert close_frame[0] == 0x8 and struct.unpack("!H", close_frame[1][:2])[0] == 1002
    await ws.close()


async def test_replies_keep_their_place_around_a_pong_and_a_close(raw_server):
    """Message, ping, message, close in one write: echo, pong, echo, close leave in that order."""
    frames: asyncio.Queue[tuple[int, bytes, bytes | None]] = asyncio.Queue()

    async def burst(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept_upgrade(
            reader,
            writer,
            extra=server_frame(0x1, b"one")
            + server_frame(0x9, b"ping!")
            + server_frame(0x1, b"two")
            + server_frame(0x8, struct.pack("!H", 1000)),
        )
        while True:
            frames.put_nowait(await read_client_frame(reader))

    port = await raw_server(burst)
    ws = await connect(f"ws://127.0.0.1:{port}/", compression=None, close_timeout=0.2)
    async for message in ws:
        await ws.send(message)
    assert ws.close_code == 1000
    sent = [(await asyncio.wait_for(frames.get(), WAIT_S))[:2] for _ in range(4)]
    assert sent == [
        (0x1, b"one"),
        (0xA, b"ping!"),
        (0x1, b"two"),
        (0x8, struct.pack("!H", 1000)),
    ]
    await ws.close()


# -- wss:// ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, made by openssl."""
    if shutil.which("openssl") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("openssl is required in CI")
        pytest.skip("openssl not installed")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


async def test_wss_with_a_trusted_self_signed_certificate(
    start_server: StartServer, self_signed
):
    cert, key = self_signed
    server = await start_server(tls_cert=str(cert), tls_key=str(key))
    context = ssl.create_default_context(cafile=str(cert))
    async with connect(f"wss://127.0.0.1:{server.port}/echo", ssl=context) as ws:
        await ws.send("secret")
        assert await ws.recv() == "secret"


async def test_wss_checks_the_certificate_against_the_system_cas(
    start_server: StartServer, self_signed
):
    cert, key = self_signed
    server = await start_server(tls_cert=str(cert), tls_key=str(key))
    with pytest.raises(ssl.SSLCertVerificationError):
        await connect(f"wss://127.0.0.1:{server.port}/echo")


async def test_wss_insecure_skips_the_check_only_when_asked(
    start_server: StartServer, self_signed
):
    cert, key = self_signed
    server = await start_server(tls_cert=str(cert), tls_key=str(key))
    async with connect(f"wss://localhost:{server.port}/echo", insecure=True) as ws:
        await ws.send("anyway")
        assert await ws.recv() == "anyway"
    with pytest.raises(ValueError):
        connect(f"ws://127.0.0.1:{server.port}/echo", insecure=True)


def test_connect_is_exported_from_the_package():
    assert rawws.connect is connect
    assert issubclass(ClientConnection, object)
