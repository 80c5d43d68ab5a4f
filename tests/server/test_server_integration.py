"""A real rawws server against independent clients: the `websockets` library and raw sockets.

The `websockets` client is a second, independent implementation of RFC 6455 and
RFC 7692; raw sockets are used wherever a library would hide the bytes (frame
bits, several frames in one write, a peer that misbehaves on purpose).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import PerMessageDeflate as ClientDeflate

from rawws.server.server import Server
from testkit import free_port, masked_frame, wait_for_port
from tests.support.helpers import (
    ACCEPT,
    close_code,
    close_writer,
    deflate_message,
    inflate_message,
    open_raw,
    parse_http_response,
    read_frame_full,
    read_http_head,
    read_until_eof,
    upgrade_request,
)

TIMEOUT_S = (
    5.0  # the longest any single step may take before the test fails instead of hanging
)
REPO_ROOT = Path(__file__).resolve().parents[2]

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
CONTINUATION = 0x0
DEFLATE_OFFER = "Sec-WebSocket-Extensions: permessage-deflate\r\n"


# -- helpers -------------------------------------------------------------------


def ws_url(
    server: Server, path: str = "/echo", scheme: str = "ws", host: str = "127.0.0.1"
) -> str:
    return f"{scheme}://{host}:{server.port}{path}"


def client(url: str, **options: object) -> connect:
    """A `websockets` client with bounded timeouts and no proxy from the environment."""
    settings: dict[str, object] = {
        "proxy": None,
        "open_timeout": TIMEOUT_S,
        "close_timeout": TIMEOUT_S,
    }
    settings.update(options)
    return connect(url, **settings)  # type: ignore[arg-type]


async def echo_once(ws: ClientConnection, message: str | bytes) -> str | bytes:
    await ws.send(message)
    return await asyncio.wait_for(ws.recv(), TIMEOUT_S)


async def assert_serves_echo(server: Server) -> None:
    """A fresh client still gets its echo: the server survived whatever came before."""
    async with client(ws_url(server)) as ws:
        assert await echo_once(ws, "still here?") == "still here?"


async def raw_upgrade(
    port: int, *, extra: str = "", first: bytes = b""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, str]]:
    """Open a raw WebSocket to /echo; ``first`` is written in the same write as the request."""
    reader, writer = await open_raw(port)
    writer.write(upgrade_request(extra=extra) + first)
    status, headers, _ = await read_http_head(reader, TIMEOUT_S)
    assert status == 101, f"upgrade refused with {status}"
    assert headers["sec-websocket-accept"] == ACCEPT
    return reader, writer, headers


async def expect_close(reader: asyncio.StreamReader, code: int) -> None:
    """The next frame that is not a ping is a close frame with ``code``; then TCP ends (RFC 6455 §7.1.7)."""
    while True:
        opcode, payload, _, _ = await read_frame_full(reader, TIMEOUT_S)
        if opcode != PING:
            break
    assert opcode == CLOSE, (
        f"expected a close frame, got opcode {opcode:#x} payload {payload[:60]!r}"
    )
    assert close_code(payload) == code
    rest, closed = await read_until_eof(reader, TIMEOUT_S)
    assert closed, "the server kept TCP open after failing the connection"
    assert rest == b"", f"data after the close frame: {rest[:60]!r}"


# -- echo ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    ["hello", "héllo wörld ✓ 🎉", b"\x00\x01\xfe\xff binary", "", b""],
    ids=["text", "text-non-ascii", "binary", "empty-text", "empty-binary"],
)
async def test_echo_message(echo_server: Server, message: str | bytes) -> None:
    """Text comes back as text and binary as binary, byte for byte, empty ones included (RFC 6455 §5.6)."""
    async with client(ws_url(echo_server)) as ws:
        answer = await echo_once(ws, message)
    assert type(answer) is type(message)
    assert answer == message


@pytest.mark.parametrize("kind", ["text", "binary"])
async def test_echo_message_of_nearly_one_mib(echo_server: Server, kind: str) -> None:
    """A message just under the default 1 MiB limit is echoed whole (compressed on the wire by default)."""
    size = 1024 * 1024 - 1024
    if kind == "text":
        message: str | bytes = (os.urandom(size // 2).hex())[
            :size
        ]  # compresses roughly by half
    else:
        message = os.urandom(size)  # does not compress at all
    async with client(ws_url(echo_server), max_size=2 * 1024 * 1024) as ws:
        answer = await asyncio.wait_for(echo_once(ws, message), 20)
    assert answer == message


async def test_pipelined_messages_come_back_in_order(echo_server: Server) -> None:
    """Many messages sent before reading any answer are echoed in the order they were sent."""
    messages = [
        f"message {i}" if i % 2 else f"message {i}".encode() for i in range(200)
    ]
    async with client(ws_url(echo_server)) as ws:
        for message in messages:
            await ws.send(message)
        answers = [await asyncio.wait_for(ws.recv(), TIMEOUT_S) for _ in messages]
    assert answers == messages


async def test_pipelined_raw_frames_in_one_write(echo_server: Server) -> None:
    """Fifty frames in a single TCP write: fifty echoes, in order."""
    reader, writer, _ = await raw_upgrade(echo_server.port)
    try:
        payloads = [f"frame {i}".encode() for i in range(50)]
        writer.write(b"".join(masked_frame(TEXT, p) for p in payloads))
        for expected in payloads:
            opcode, payload, fin, _ = await read_frame_full(reader, TIMEOUT_S)
            assert (opcode, payload, fin) == (TEXT, expected, True)
    finally:
        await close_writer(writer)


# -- permessage-deflate negotiation --------------------------------------------------


async def test_permessage_deflate_negotiated_by_default(echo_server: Server) -> None:
    """The websockets client offers permessage-deflate and the server accepts it (RFC 7692 §5)."""
    async with client(ws_url(echo_server)) as ws:
        assert any(isinstance(ext, ClientDeflate) for ext in ws.protocol.extensions)
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        assert await echo_once(ws, "compressed " * 100) == "compressed " * 100


async def test_permessage_deflate_not_negotiated_when_disabled(start_server) -> None:
    """With ``compression=False`` the offer is declined: no extension header in the 101."""
    server = await start_server(compression=False)
    async with client(ws_url(server)) as ws:
        assert ws.protocol.extensions == []
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        assert await echo_once(ws, "plain " * 100) == "plain " * 100


# -- the handshake and the first frame in one write --------------------------------


async def test_request_and_first_frame_in_one_write(echo_server: Server) -> None:
    """Bytes after the request head belong to the WebSocket (RFC 6455 §4.1): they must not be lost."""
    reader, writer, _ = await raw_upgrade(
        echo_server.port, first=masked_frame(TEXT, b"first!")
    )
    try:
        opcode, payload, fin, _ = await read_frame_full(reader, TIMEOUT_S)
        assert (opcode, payload, fin) == (TEXT, b"first!", True)
        writer.write(masked_frame(BINARY, b"second"))
        opcode, payload, fin, _ = await read_frame_full(reader, TIMEOUT_S)
        assert (opcode, payload, fin) == (BINARY, b"second", True)
    finally:
        await close_writer(writer)


# -- the message size limit --------------------------------------------------------


async def test_single_frame_over_limit_is_closed_with_1009(start_server) -> None:
    """A 2 KiB frame against a 1 KiB limit: close 1009 (RFC 6455 §7.4.1), and the server keeps serving."""
    server = await start_server(max_message_bytes=1024)
    reader, writer, _ = await raw_upgrade(server.port)
    try:
        writer.write(masked_frame(BINARY, os.urandom(2048)))
        await expect_close(reader, 1009)
    finally:
        await close_writer(writer)
    await assert_serves_echo(server)


async def test_fragmented_message_over_limit_is_closed_with_1009(start_server) -> None:
    """Three fragments of 400 bytes each are fine alone; their 1200-byte message is not."""
    server = await start_server(max_message_bytes=1024)
    reader, writer, _ = await raw_upgrade(server.port)
    try:
        writer.write(
            masked_frame(TEXT, b"a" * 400, fin=False)
            + masked_frame(CONTINUATION, b"b" * 400, fin=False)
            + masked_frame(CONTINUATION, b"c" * 400, fin=True)
        )
        await expect_close(reader, 1009)
    finally:
        await close_writer(writer)
    await assert_serves_echo(server)


async def test_compression_bomb_is_closed_with_1009(start_server) -> None:
    """A ~300-byte compressed frame that inflates to 256 KiB: the limit applies after inflation."""
    server = await start_server(max_message_bytes=1024)
    reader, writer, headers = await raw_upgrade(server.port, extra=DEFLATE_OFFER)
    try:
        assert headers["sec-websocket-extensions"].startswith("permessage-deflate")
        bomb = deflate_message(b"A" * 256 * 1024)
        assert len(bomb) < 1024, "the bomb itself must be under the limit"
        writer.write(masked_frame(BINARY, bomb, rsv1=True))
        await expect_close(reader, 1009)
    finally:
        await close_writer(writer)
    await assert_serves_echo(server)


async def test_compression_bomb_from_websockets_client_is_closed_with_1009(
    start_server,
) -> None:
    """The same through an independent deflate implementation: 64 KiB of one letter, compressed."""
    server = await start_server(max_message_bytes=1024)
    async with client(ws_url(server)) as ws:
        await ws.send("z" * 64 * 1024)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT_S)
        assert ws.close_code == 1009
    await assert_serves_echo(server)


async def test_limit_counts_message_bytes_not_compressed_frame_bytes(
    start_server,
) -> None:
    """A 1024-byte message is within a 1024-byte limit even when deflate makes its frame bigger.

    Random bytes do not compress: the deflate stream is a few bytes longer than
    the message. The limit is on the message ("after decompression", ``--help``),
    so this message must be echoed, not closed with 1009.
    """
    server = await start_server(max_message_bytes=1024)
    reader, writer, _ = await raw_upgrade(server.port, extra=DEFLATE_OFFER)
    try:
        message = os.urandom(1024)
        compressed = deflate_message(message)
        assert len(compressed) > 1024
        writer.write(masked_frame(BINARY, compressed, rsv1=True))
        opcode, payload, fin, rsv1 = await read_frame_full(reader, TIMEOUT_S)
        assert opcode == BINARY, (
            f"expected the echo, got opcode {opcode:#x} (close code {close_code(payload)})"
        )
        assert fin
        assert (inflate_message(payload) if rsv1 else payload) == message
    finally:
        await close_writer(writer)


# -- protocol violations ----------------------------------------------------------------


async def test_invalid_utf8_text_is_closed_with_1007(echo_server: Server) -> None:
    """A text message must be UTF-8 (RFC 6455 §8.1): otherwise fail with 1007 (§7.4.1)."""
    reader, writer, _ = await raw_upgrade(echo_server.port)
    try:
        writer.write(masked_frame(TEXT, b"bad \xff\xfe utf-8"))
        await expect_close(reader, 1007)
    finally:
        await close_writer(writer)
    await assert_serves_echo(echo_server)


@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10], ids=["rsv1", "rsv2", "rsv3"])
async def test_rsv_bit_without_extension_is_closed_with_1002(
    echo_server: Server, rsv: int
) -> None:
    """RSV bits must be 0 unless an extension gives them a meaning (RFC 6455 §5.2)."""
    reader, writer, _ = await raw_upgrade(echo_server.port)  # no extension offered
    try:
        frame = bytearray(masked_frame(TEXT, b"hello"))
        frame[0] |= rsv
        writer.write(bytes(frame))
        await expect_close(reader, 1002)
    finally:
        await close_writer(writer)


async def test_unmasked_client_frame_is_closed_with_1002(echo_server: Server) -> None:
    """A server MUST close the connection on an unmasked client frame (RFC 6455 §5.1)."""
    reader, writer, _ = await raw_upgrade(echo_server.port)
    try:
        writer.write(b"\x81\x05hello")
        await expect_close(reader, 1002)
    finally:
        await close_writer(writer)


# -- a ping between the fragments of a compressed message -----------------------------


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["text", "binary"])
async def test_ping_between_compressed_fragments(
    echo_server: Server, opcode: int
) -> None:
    """Control frames may be injected between fragments (RFC 6455 §5.4); RSV1 is on the first
    fragment only (RFC 7692 §6.1), so the continuation must still be inflated after the ping.
    """
    reader, writer, headers = await raw_upgrade(echo_server.port, extra=DEFLATE_OFFER)
    try:
        assert headers["sec-websocket-extensions"].startswith("permessage-deflate")
        message = (
            "fragmented, compressed and pinged in between: " + os.urandom(64).hex()
        ).encode()
        compressed = deflate_message(message)
        half = len(compressed) // 2
        writer.write(masked_frame(opcode, compressed[:half], fin=False, rsv1=True))
        writer.write(masked_frame(PING, b"are you there?"))
        writer.write(masked_frame(CONTINUATION, compressed[half:], fin=True))

        got_opcode, payload, fin, rsv1 = await read_frame_full(reader, TIMEOUT_S)
        assert (got_opcode, payload, fin, rsv1) == (
            PONG,
            b"are you there?",
            True,
            False,
        )

        got_opcode, payload, fin, rsv1 = await read_frame_full(reader, TIMEOUT_S)
        assert got_opcode == opcode, (
            f"expected the echo, got {got_opcode:#x} close code {close_code(payload)}"
        )
        assert fin
        assert (inflate_message(payload) if rsv1 else payload) == message

        # and the connection is in a sane state afterwards
        writer.write(masked_frame(opcode, deflate_message(b"after"), rsv1=True))
        got_opcode, payload, _, rsv1 = await read_frame_full(reader, TIMEOUT_S)
        assert got_opcode == opcode
        assert (inflate_message(payload) if rsv1 else payload) == b"after"
    finally:
        await close_writer(writer)


# -- keepalive -----------------------------------------------------------------------------


async def test_peer_that_never_answers_pings_is_dropped(start_server) -> None:
    """No pong within the timeout: the peer is dead; the server fails it with 1011 and drops TCP."""
    server = await start_server(ping_interval_s=0.2, ping_timeout_s=0.2)
    reader, writer, _ = await raw_upgrade(server.port)
    try:
        data, closed = await read_until_eof(
            reader, TIMEOUT_S
        )  # pings arrive; we never answer
        assert closed, "a peer that never answers pings was not disconnected"
        assert data.startswith(bytes([0x80 | PING])), (
            "the server should have pinged first"
        )
        # It fails the connection with 1011 (rawws.core.keepalive): the close frame is sent as a courtesy.
        assert (
            bytes([0x88, 24]) + (1011).to_bytes(2, "big") + b"keepalive ping timeout"
            in data
        )
    finally:
        await close_writer(writer)
    await assert_serves_echo(server)


async def test_peer_that_answers_pings_stays_connected(start_server) -> None:
    """A client that answers pings (websockets does, RFC 6455 §5.5.2) survives many intervals."""
    server = await start_server(ping_interval_s=0.2, ping_timeout_s=0.2)
    async with client(
        ws_url(server), ping_interval=None
    ) as ws:  # only the server pings
        await asyncio.sleep(1.5)  # about seven ping intervals
        assert await echo_once(ws, "alive") == "alive"
        assert len(server.connections) == 1


# -- handshake timeout ----------------------------------------------------------------------


async def test_silent_connection_is_closed_after_handshake_timeout(
    start_server,
) -> None:
    server = await start_server(handshake_timeout_s=0.5)
    reader, writer = await open_raw(server.port)
    try:
        data, closed = await read_until_eof(reader, TIMEOUT_S)
        assert closed, "a connection that never sent a request was kept open"
        assert not data.startswith(b"HTTP/1.1 101")
    finally:
        await close_writer(writer)


async def test_trickling_client_is_cut_off_and_does_not_hold_the_server(
    start_server,
) -> None:
    """One header byte every 0.1 s never completes the request in time: 408 or close (RFC 9110 §15.5.9)."""
    server = await start_server(handshake_timeout_s=0.5)
    reader, writer = await open_raw(server.port)

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            for byte in upgrade_request():
                if writer.is_closing():
                    return
                writer.write(bytes([byte]))
                await asyncio.sleep(0.1)

    trickler = asyncio.create_task(trickle())
    try:
        await asyncio.sleep(0.2)  # the trickle has begun
        await assert_serves_echo(server)  # meanwhile another client is served
        data, closed = await read_until_eof(reader, TIMEOUT_S)
        assert closed, (
            "a trickling client held its connection past the handshake timeout"
        )
        if data:
            status, _, _, _ = parse_http_response(data)
            assert status == 408
        assert not trickler.done(), (
            "the whole request trickled in before the server reacted"
        )
    finally:
        trickler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await trickler
        await close_writer(writer)


# -- graceful shutdown -------------------------------------------------------------------------


async def test_shutdown_closes_open_websockets_with_1001(start_server) -> None:
    """Going away is 1001 (RFC 6455 §7.4.1), sent to every open connection."""
    server = await start_server()
    async with client(ws_url(server)) as first, client(ws_url(server)) as second:
        assert await echo_once(first, "one") == "one"
        assert await echo_once(second, "two") == "two"
        await asyncio.wait_for(server.shutdown(), 15)
        for ws in (first, second):
            await asyncio.wait_for(ws.wait_closed(), TIMEOUT_S)
            assert ws.close_code == 1001


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"]
)
async def test_cli_process_closes_with_1001_and_exits_0_on_signal(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """`python -m rawws serve --echo`: a signal closes open WebSockets with 1001 and exits 0."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAWWS_")}
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "rawws",
            "serve",
            "--echo",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
        )
    try:
        await asyncio.to_thread(wait_for_port, port, timeout=15)
        async with client(f"ws://127.0.0.1:{port}/echo") as ws:
            assert await echo_once(ws, "before the signal") == "before the signal"
            proc.send_signal(sig)
            await asyncio.wait_for(ws.wait_closed(), 10)
            assert ws.close_code == 1001
        returncode = await asyncio.wait_for(proc.wait(), 10)
        assert returncode == 0, log_path.read_text(errors="replace")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# -- TLS -------------------------------------------------------------------------------------------


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 and localhost."""
    openssl = shutil.which("openssl")
    if openssl is None:
        if os.environ.get("CI") == "true":
            pytest.fail("openssl is required for the TLS tests under CI")
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture
async def tls_server(
    start_server, tls_files: tuple[Path, Path]
) -> AsyncIterator[tuple[Server, ssl.SSLContext]]:
    cert, key = tls_files
    server = await start_server(tls_cert=str(cert), tls_key=str(key))
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
    yield server, context


async def test_wss_echo(tls_server: tuple[Server, ssl.SSLContext]) -> None:
    server, context = tls_server
    async with client(ws_url(server, scheme="wss"), ssl=context) as ws:
        assert await echo_once(ws, "over tls") == "over tls"
        assert await echo_once(ws, b"\x00binary over tls") == b"\x00binary over tls"


async def test_https_healthz(tls_server: tuple[Server, ssl.SSLContext]) -> None:
    server, context = tls_server
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(
            "127.0.0.1", server.port, ssl=context, server_hostname="localhost"
        ),
        TIMEOUT_S,
    )
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        status, headers, body = await read_http_head(reader, TIMEOUT_S)
        assert status == 200
        assert headers["content-type"] == "application/json"
        assert b'"status":"ok"' in body
    finally:
        await close_writer(writer)


async def test_plain_http_to_tls_port_does_not_hold_the_server(
    tls_server: tuple[Server, ssl.SSLContext],
) -> None:
    """A cleartext request on the TLS port is dropped, and TLS clients are still served."""
    server, context = tls_server
    reader, writer = await open_raw(server.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data, closed = await read_until_eof(reader, TIMEOUT_S)
        assert closed
        assert not data.startswith(b"HTTP/1.1 200")
    finally:
        await close_writer(writer)
    async with client(ws_url(server, scheme="wss"), ssl=context) as ws:
        assert await echo_once(ws, "still serving") == "still serving"


# -- logging ----------------------------------------------------------------------------------------


async def test_logs_never_contain_query_secrets(
    start_server, caplog: pytest.LogCaptureFixture
) -> None:
    """Query strings may carry tokens: no log record of ``rawws`` may contain one, at any level.

    And one WebSocket writes exactly one ``ws open`` and one ``ws close`` line, with its close code.
    """
    caplog.set_level(logging.DEBUG, logger="rawws")
    server = await start_server()
    secrets = ["SECRET123abc", "SECRET456def", "SECRET789ghi", "SECRET000jkl"]

    async with client(ws_url(server, f"/echo?token={secrets[0]}")) as ws:
        assert await echo_once(ws, "hi") == "hi"
        await ws.close(1000)

    reader, writer = await open_raw(server.port)
    try:
        writer.write(
            f"GET /healthz?token={secrets[1]} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
        )
        status, _, _ = await read_http_head(reader, TIMEOUT_S)
        assert status == 200
        # a refused upgrade (unsupported version) with a secret in its query
        writer.write(
            upgrade_request(f"/echo?token={secrets[2]}").replace(
                b"Version: 13", b"Version: 8"
            )
        )
        status, _, _ = await read_http_head(reader, TIMEOUT_S)
        assert status == 426
    finally:
        await close_writer(writer)

    reader, writer = await open_raw(server.port)  # an upgrade to an unknown path
    try:
        writer.write(upgrade_request(f"/nowhere?token={secrets[3]}"))
        status, _, _ = await read_http_head(reader, TIMEOUT_S)
        assert status == 404
    finally:
        await close_writer(writer)

    def ws_lines(prefix: str) -> list[logging.LogRecord]:
        return [
            r
            for r in caplog.records
            if r.name.startswith("rawws")
            and r.levelno == logging.INFO
            and r.getMessage().startswith(prefix)
        ]

    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT_S
    while not ws_lines("ws close ") and loop.time() < deadline:
        await asyncio.sleep(0.02)

    records = [
        r for r in caplog.records if r.name == "rawws" or r.name.startswith("rawws.")
    ]
    assert records, "expected some rawws log records"
    for record in records:
        text = record.getMessage() + (record.exc_text or "")
        for secret in secrets:
            assert secret not in text, f"secret leaked in log record: {text!r}"

    opens, closes = ws_lines("ws open "), ws_lines("ws close ")
    assert len(opens) == 1, [r.getMessage() for r in opens]
    assert len(closes) == 1, [r.getMessage() for r in closes]
    assert "code=1000" in closes[0].getMessage()


# -- plain HTTP keep-alive ----------------------------------------------------------------------------


async def test_two_requests_on_one_connection(echo_server: Server) -> None:
    """HTTP/1.1 connections are persistent by default (RFC 7230 §6.3)."""
    reader, writer = await open_raw(echo_server.port)
    try:
        for _ in range(2):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            status, headers, body = await read_http_head(reader, TIMEOUT_S)
            assert status == 200
            assert "close" not in headers.get("connection", "").lower()
            assert b'"status":"ok"' in body
    finally:
        await close_writer(writer)


async def test_head_gets_headers_and_no_body(echo_server: Server) -> None:
    """A response to HEAD has no body (RFC 7231 §4.3.2): the next response follows the head directly."""
    reader, writer = await open_raw(echo_server.port)
    try:
        writer.write(
            b"HEAD /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT_S)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"content-type: application/json" in head.lower()
        # no body bytes: the very next bytes are the GET's status line
        status, _, body = await read_http_head(reader, TIMEOUT_S)
        assert status == 200
        assert b'"status":"ok"' in body
    finally:
        await close_writer(writer)
