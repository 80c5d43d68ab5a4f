"""A corpus of malformed and hostile requests, each on a fresh connection to a fresh server.

Every case states the one answer the RFCs ask for: an HTTP status, ``CLOSED``
(TCP closed without a byte of answer), or ``WS_CLOSE_1002`` (a close frame with
1002, then TCP closed). Only where an RFC explicitly lets the server choose is
the expectation a tuple of the allowed answers, with the RFC text quoted.

After each case the server must still answer ``GET /healthz`` on a new
connection. An HTTP error answer is never a 101, and after a 4xx/5xx to a
request that is malformed *as HTTP* the server closes the connection (the
framing of whatever follows cannot be trusted: RFC 7230 §3.3.3, §9.5).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import pytest

from rawws.server.server import Server
from tests.support.helpers import (
    KEY,
    close_code,
    open_raw,
    parse_http_response,
    read_http_head,
    read_until_eof,
    upgrade_request,
)

HANDSHAKE_TIMEOUT_S = (
    1.0  # the server's; small so the silent and trickling cases end soon
)
WAIT_S = 5.0  # how long a case may take before it fails instead of hanging

CLOSED = "closed without an answer"
WS_CLOSE_1002 = "close frame 1002"

Outcome = int | str
Sender = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter], Awaitable["asyncio.Task[None] | None"]
]

HOST = "Host: localhost\r\n"


def get(
    target: str = "/healthz",
    headers: str = HOST,
    *,
    method: str = "GET",
    version: str = "HTTP/1.1",
) -> bytes:
    return f"{method} {target} {version}\r\n{headers}\r\n".encode("latin-1")


def post(body_headers: str, body: bytes = b"", target: str = "/healthz") -> bytes:
    return (
        f"POST {target} HTTP/1.1\r\n{HOST}{body_headers}\r\n".encode("latin-1") + body
    )


def upgrade_without(header: str, *, extra: str = "") -> bytes:
    """The valid upgrade request minus one header line (matched by its name)."""
    lines = upgrade_request(extra=extra).split(b"\r\n")
    kept = [
        line
        for line in lines
        if not line.lower().startswith(header.lower().encode() + b":")
    ]
    return b"\r\n".join(kept)


def upgrade_replacing(old: str, new: str) -> bytes:
    request = upgrade_request()
    assert old.encode() in request
    return request.replace(old.encode(), new.encode(), 1)


# -- senders for the cases that are more than one write ---------------------------------------


async def send_nothing(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Connect and stay silent."""


async def trickle_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> asyncio.Task[None]:
    """A valid request, one byte every 0.1 s: it would take ~15 s, far past the handshake timeout."""

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            for byte in upgrade_request():
                if writer.is_closing():
                    return
                writer.write(bytes([byte]))
                await asyncio.sleep(0.1)

    return asyncio.create_task(trickle())


async def half_request_then_eof(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.write(b"GET /healthz HTTP/1.1\r\nHo")
    await writer.drain()
    writer.write_eof()


async def garbage_after_upgrade(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """A successful handshake, then bytes that are no WebSocket frame (reserved opcode, RSV bits)."""
    writer.write(upgrade_request())
    status, _, _ = await read_http_head(reader, WAIT_S)
    assert status == 101
    writer.write(b"\xff\xfe garbage!")


# -- the corpus -------------------------------------------------------------------------------------


class Case(NamedTuple):
    id: str
    send: bytes | Sender
    expect: Outcome | tuple[Outcome, ...]
    #: True for requests that are malformed as HTTP: after the answer the server must close.
    must_close: bool = True
    #: headers the answer must carry (lower-case name → a value that must appear in it)
    headers: dict[str, str] = {}


CASES = [
    # -- the request line (RFC 7230 §3.1.1) --
    Case(
        "garbage-instead-of-request-line",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n",
        400,
    ),
    Case("request-line-without-version", b"GET /healthz\r\n\r\n", 400),
    Case("space-inside-target", get("/heal thz"), 400),
    # RFC 7230 §2.6: 505 for a major version the server refuses; h11 accepts "HTTP/2.0" syntactically.
    Case("http-2.0-request-line", get(version="HTTP/2.0"), 505),
    Case("http2-prior-knowledge-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    # RFC 7230 §3.1.1: methods are case-sensitive; RFC 7231 §4.1: an unrecognised method → 501.
    Case("lowercase-method", get(method="get"), 501, must_close=False),
    Case(
        "lowercase-method-upgrade",
        upgrade_request().replace(b"GET ", b"get ", 1),
        501,
        must_close=False,
    ),
    # RFC 7230 §3.1.1: a request-target longer than the server will parse MUST get 414.
    Case("target-longer-than-header-limit", get("/" + "a" * 20_000), 414),
    # -- header fields (RFC 7230 §3.2) --
    # RFC 6585 §5: 431 when the header fields are too large (limit 16 KiB; these are 20 KiB).
    Case(
        "20-KiB-of-headers",
        get(headers=HOST + "".join(f"X-Pad-{i}: {'v' * 90}\r\n" for i in range(200))),
        431,
    ),
    Case("header-without-colon", get(headers=HOST + "NoColonHere\r\n"), 400),
    Case("header-name-with-space", get(headers=HOST + "X Forwarded: yes\r\n"), 400),
    # RFC 7230 §3.2.4: whitespace between field-name and colon MUST be rejected with 400.
    Case("whitespace-before-colon", get(headers="Host : localhost\r\n"), 400),
    Case(
        "bare-cr-in-value",
        get(headers=HOST + "X-Injected: a\rSet-Cookie: x=y\r\n"),
        400,
    ),
    Case("nul-in-value", get(headers=HOST + "X-Injected: a\x00b\r\n"), 400),
    # RFC 7230 §3.2.4: obs-fold MUST be rejected with 400 *or* replaced by SP (then it is a fine request).
    Case(
        "obs-fold-continuation-line",
        get(headers=HOST + "X-Folded: first\r\n second\r\nConnection: close\r\n"),
        (400, 200),
    ),
    # RFC 7230 §5.4: a missing Host, or more than one, MUST get 400.
    Case("missing-host", b"GET /healthz HTTP/1.1\r\n\r\n", 400),
    Case("two-hosts", get(headers=HOST + "Host: evil.example\r\n"), 400),
    # -- message framing and bodies (RFC 7230 §3.3) --
    # §3.3.3 item 4: differing Content-Length values are an unrecoverable error: 400 and close.
    Case(
        "duplicate-content-length",
        post("Content-Length: 3\r\nContent-Length: 5\r\n", b"abcde"),
        400,
    ),
    Case("content-length-not-a-number", post("Content-Length: abc\r\n"), 400),
    Case("negative-content-length", post("Content-Length: -1\r\n"), 400),
    # §3.3.3 item 3: both Transfer-Encoding and Content-Length: smuggling, "ought to be handled as an error".
    Case(
        "content-length-and-chunked",
        post("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
        400,
    ),
    Case(
        "chunked-with-bad-chunk-size",
        post("Transfer-Encoding: chunked\r\n", b"zz\r\nabc\r\n0\r\n\r\n"),
        400,
    ),
    # §3.3.1: a transfer coding the server does not understand → 501.
    Case("unknown-transfer-coding", post("Transfer-Encoding: gzip\r\n"), 501),
    # RFC 7231 §6.5.11: 413 for a body over the limit (64 KiB), judged by Content-Length before reading it...
    Case("content-length-over-body-limit", post("Content-Length: 70000\r\n"), 413),
    Case(
        "content-length-of-20-digits",
        post("Content-Length: 99999999999999999999\r\n"),
        413,
    ),
    # ...or by counting a chunked body (one chunk of 64 KiB + 1, no terminator needed)
    Case(
        "chunked-body-over-body-limit",
        post(
            "Transfer-Encoding: chunked\r\n", f"{65_537:x}\r\n".encode() + b"x" * 65_537
        ),
        413,
    ),
    # -- the WebSocket path without a proper handshake --
    # RFC 7231 §6.5.5: 405 MUST carry Allow.
    Case(
        "post-to-websocket-path",
        post("Content-Length: 0\r\n", target="/echo"),
        405,
        False,
        {"allow": "GET"},
    ),
    # RFC 7231 §6.5.15: 426 MUST carry Upgrade.
    Case(
        "plain-get-to-websocket-path",
        get("/echo"),
        426,
        False,
        {"upgrade": "websocket"},
    ),
    # -- the opening handshake (RFC 6455 §4.2.1: an invalid handshake gets 400) --
    Case(
        "http-1.0-upgrade",
        upgrade_request().replace(b"HTTP/1.1", b"HTTP/1.0", 1),
        400,
        False,
    ),
    Case(
        "upgrade-to-h2c",
        upgrade_replacing("Upgrade: websocket", "Upgrade: h2c"),
        400,
        False,
    ),
    Case("missing-connection-upgrade", upgrade_without("Connection"), 400, False),
    Case(
        "connection-keep-alive-only",
        upgrade_replacing("Connection: Upgrade", "Connection: keep-alive"),
        400,
        False,
    ),
    # RFC 6455 §4.2.2 / §4.4: an unknown version → 426 with Sec-WebSocket-Version: 13 (and, being a
    # 426, with Upgrade: RFC 7231 §6.5.15).
    Case(
        "websocket-version-8",
        upgrade_replacing("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
        426,
        False,
        {"sec-websocket-version": "13", "upgrade": "websocket"},
    ),
    # A missing version is a handshake that lacks a required field: §4.2.1 item 6 → 400.
    Case(
        "missing-websocket-version",
        upgrade_without("Sec-WebSocket-Version"),
        400,
        False,
    ),
    Case("key-not-base64", upgrade_request(key="not base64 at all!!"), 400, False),
    Case("key-of-15-bytes", upgrade_request(key="AAAAAAAAAAAAAAAAAAAA"), 400, False),
    Case("key-of-17-bytes", upgrade_request(key="A" * 23 + "="), 400, False),
    Case("missing-key", upgrade_without("Sec-WebSocket-Key"), 400, False),
    Case(
        "two-keys", upgrade_request(extra=f"Sec-WebSocket-Key: {KEY}\r\n"), 400, False
    ),
    Case("upgrade-to-unknown-path", upgrade_request("/no-such-endpoint"), 404, False),
    Case(
        "bad-extensions-syntax",
        upgrade_request(
            extra="Sec-WebSocket-Extensions: permessage-deflate; =oops\r\n"
        ),
        400,
        False,
    ),
    Case(
        "unterminated-quote-in-extensions",
        upgrade_request(
            extra='Sec-WebSocket-Extensions: permessage-deflate; x="oops\r\n'
        ),
        400,
        False,
    ),
    # -- after the handshake, and connections that never finish a request --
    # RFC 6455 §5.2/§7.1.7: reserved bits and opcodes with no meaning fail the connection with 1002.
    Case("garbage-after-upgrade", garbage_after_upgrade, WS_CLOSE_1002),
    # No request at all: nothing to answer, the idle connection is just closed (RFC 7230 §6.5).
    Case("silent-connection", send_nothing, CLOSED),
    # A request begun but not finished in time: 408 (RFC 7231 §6.5.7).
    Case("trickling-client", trickle_request, 408),
    # RFC 7230 §3.4: on an incomplete request the server "MAY send an error response prior to closing".
    Case("half-request-then-eof", half_request_then_eof, (400, CLOSED)),
]


def describe(data: bytes) -> Outcome:
    """What the server answered, as one of the ``Outcome`` values."""
    if not data:
        return CLOSED
    if data.startswith(b"HTTP/"):
        return parse_http_response(data)[0]
    if data[0] == 0x88:
        return f"close frame {close_code(data[2:])}"
    return f"unexpected bytes {data[:40]!r}"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_hostile_request(start_server, case: Case) -> None:
    server = await start_server(handshake_timeout_s=HANDSHAKE_TIMEOUT_S)
    allowed = case.expect if isinstance(case.expect, tuple) else (case.expect,)

    reader, writer = await open_raw(server.port)
    background: asyncio.Task[None] | None = None
    try:
        if isinstance(case.send, bytes):
            writer.write(case.send)
            with contextlib.suppress(ConnectionError):
                await asyncio.wait_for(writer.drain(), WAIT_S)
        else:
            background = await asyncio.wait_for(case.send(reader, writer), WAIT_S)

        if case.must_close:
            data, closed = await read_until_eof(reader, WAIT_S)
            outcome = describe(data)
            assert outcome in allowed, (
                f"got {outcome!r}, expected {' or '.join(map(repr, allowed))}"
            )
            if data.startswith(b"HTTP/"):
                _, headers, _, rest = parse_http_response(data)
                assert rest == b"", f"more than one answer: {rest[:80]!r}"
            elif data:
                assert len(data) == 2 + (data[1] & 0x7F), (
                    f"more than one close frame: {data[:80]!r}"
                )
            assert closed, (
                f"the server answered {outcome!r} and kept the connection open"
            )
        else:
            status, headers, _ = await read_http_head(reader, WAIT_S)
            outcome = status
            assert status in allowed, (
                f"got {status}, expected {' or '.join(map(repr, allowed))}"
            )

        assert outcome != 101, "an HTTP error answer must never be 101"
        if isinstance(outcome, int):
            for name, value in case.headers.items():
                assert value.lower() in headers.get(name, "").lower(), (
                    f"{outcome} without {name}: {value}"
                )
    finally:
        if background is not None:
            background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await background
        writer.close()
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), WAIT_S)

    await assert_healthz(server)


async def assert_healthz(server: Server) -> None:
    """The server keeps serving: a new connection gets 200 from /healthz."""
    reader, writer = await open_raw(server.port)
    try:
        writer.write(get())
        status, _, body = await read_http_head(reader, WAIT_S)
        assert status == 200
        assert b'"status":"ok"' in body
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), WAIT_S)


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 25
    assert len({case.id for case in CASES}) == len(CASES), "case ids must be unique"


async def test_all_byte_cases_at_once_leave_the_server_serving(start_server) -> None:
    """Every single-write case at once on one server: none hangs the test, and the server still serves.

    (The answers themselves are judged case by case above.)
    """
    server = await start_server(handshake_timeout_s=HANDSHAKE_TIMEOUT_S)

    async def one(case: Case) -> Outcome:
        reader, writer = await open_raw(server.port)
        try:
            assert isinstance(case.send, bytes)
            writer.write(case.send)
            if case.must_close:
                data, _ = await read_until_eof(reader, WAIT_S)
                return describe(data)
            status, _, _ = await read_http_head(reader, WAIT_S)
            return status
        finally:
            writer.close()

    byte_cases = [case for case in CASES if isinstance(case.send, bytes)]
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(one(case) for case in byte_cases)), 3 * WAIT_S
    )
    assert len(outcomes) == len(byte_cases)
    await assert_healthz(server)
