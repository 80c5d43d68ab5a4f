"""Small helpers for tests that speak raw bytes to a server."""

from __future__ import annotations

import asyncio
import base64
import os
import struct

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's sample key
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # and its accept value


def upgrade_request(path: str = "/echo", *, key: str = KEY, extra: str = "", host: str = "localhost") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        f"{extra}"
        "\r\n"
    ).encode("latin-1")


def masked_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False, mask: bytes | None = None) -> bytes:
    """A client frame as RFC 6455 §5.2 lays it out, masked as §5.3 requires."""
    mask = os.urandom(4) if mask is None else mask
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    length = len(payload)
    if length <= 125:
        header = struct.pack("!BB", first, 0x80 | length)
    elif length <= 0xFFFF:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


def random_key() -> str:
    return base64.b64encode(os.urandom(16)).decode("ascii")


async def open_raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def read_http_head(reader: asyncio.StreamReader, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names, last one wins) and the body (by Content-Length)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = b""
    length = int(headers.get("content-length", "0"))
    if length:
        body = await asyncio.wait_for(reader.readexactly(length), timeout)
    return status, headers, body


async def read_frame(reader: asyncio.StreamReader, timeout: float = 5.0) -> tuple[int, bytes, bool]:
    """One unmasked server frame: (opcode, payload, fin)."""
    first, second = await asyncio.wait_for(reader.readexactly(2), timeout)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    payload = await asyncio.wait_for(reader.readexactly(length), timeout)
    return first & 0x0F, payload, bool(first & 0x80)


def close_code(payload: bytes) -> int:
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


# -- added for the integration and hostile-request suites ----------------------

import socket  # noqa: E402
import zlib  # noqa: E402

DEFLATE_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 §7.2.1: stripped by the sender, added back to inflate


def deflate_message(data: bytes) -> bytes:
    """One message compressed as permessage-deflate sends it (RFC 7692 §7.2.1), tail removed."""
    compressor = zlib.compressobj(wbits=-15)
    compressed = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert compressed.endswith(DEFLATE_TAIL)
    return compressed[: -len(DEFLATE_TAIL)]


def inflate_message(payload: bytes) -> bytes:
    """The data of one compressed message from a server (RFC 7692 §7.2.2)."""
    return zlib.decompressobj(wbits=-15).decompress(payload + DEFLATE_TAIL)


async def read_frame_full(reader: asyncio.StreamReader, timeout: float = 5.0) -> tuple[int, bytes, bool, bool]:
    """One unmasked server frame: (opcode, payload, fin, rsv1)."""
    first, second = await asyncio.wait_for(reader.readexactly(2), timeout)
    assert not second & 0x80, "a server must not mask its frames (RFC 6455 §5.1)"
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), timeout))
    elif length == 127:
        (length,) = struct.unpack("!Q", await asyncio.wait_for(reader.readexactly(8), timeout))
    payload = await asyncio.wait_for(reader.readexactly(length), timeout)
    return first & 0x0F, payload, bool(first & 0x80), bool(first & 0x40)


async def read_until_eof(reader: asyncio.StreamReader, timeout: float = 5.0) -> tuple[bytes, bool]:
    """Everything the server sends until it closes: (data, closed). ``closed`` is False on timeout.

    A reset counts as closed: the bytes received before it are kept.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    chunks: list[bytes] = []
    try:
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return b"".join(chunks), False
            chunk = await asyncio.wait_for(reader.read(65536), remaining)
            if not chunk:
                return b"".join(chunks), True
            chunks.append(chunk)
    except TimeoutError:
        return b"".join(chunks), False
    except (ConnectionResetError, BrokenPipeError):
        return b"".join(chunks), True


def parse_http_response(data: bytes) -> tuple[int, dict[str, str], bytes, bytes]:
    """Status, headers (lower-case names), body (by Content-Length) and whatever follows them."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no complete HTTP response head in {data[:200]!r}"
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), f"not an HTTP/1.1 status line: {lines[0]!r}"
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    return status, headers, rest[:length], rest[length:]


def free_port() -> int:
    """A loopback port that was free a moment ago (for servers whose port we must know in advance)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
