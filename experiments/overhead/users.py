"""The simulated users: short and long polling on keep-alive HTTP, and WebSocket push; every byte counted by kind."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import struct
import time

from experiments.overhead.common import CAPTURE_DIR, HOST
from testkit import masked_frame


def tcp_segments(sock: socket.socket) -> int:
    """Segments sent + received on this socket so far (Linux ``struct tcp_info``)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    segs_out, segs_in = struct.unpack_from("II", info, 136)
    return segs_out + segs_in


class Headers:
    """The request bytes one kind of client sends, adapted to this server's address."""

    def __init__(self, kind: str, port: int) -> None:
        self.kind = kind
        self.port = port
        self.authority = f"{HOST}:{port}"
        if kind == "chromium":
            self._poll = (CAPTURE_DIR / "chromium-poll-request.bin").read_bytes()
            self._ws = (CAPTURE_DIR / "chromium-websocket-request.bin").read_bytes()

    def _adapt(self, head: bytes, target: str) -> bytes:
        lines = head.split(b"\r\n")
        method, _, version = lines[0].split(b" ")
        lines[0] = b" ".join([method, target.encode(), version])
        out = []
        for line in lines:
            name = line.split(b":", 1)[0].lower()
            if name in (b"host", b"referer", b"origin"):
                # the captured page lived on another port of 127.0.0.1: same lengths but for the port digits
                value = line.split(b":", 1)[1]
                prefix = value.split(b"127.0.0.1:", 1)
                if len(prefix) == 2:
                    rest = prefix[1].lstrip(b"0123456789")
                    line = (
                        line.split(b":", 1)[0]
                        + b":"
                        + prefix[0]
                        + self.authority.encode()
                        + rest
                    )
            out.append(line)
        return b"\r\n".join(out)

    def poll(self, path: str, since: int) -> bytes:
        target = f"{path}?since={since}"
        if self.kind == "chromium":
            return self._adapt(self._poll, target)
        return f"GET {target} HTTP/1.1\r\nHost: {self.authority}\r\n\r\n".encode()

    def upgrade(self, key: str) -> bytes:
        if self.kind == "chromium":
            head = self._adapt(self._ws, "/ticker")
            lines = [
                (b"Sec-WebSocket-Key: " + key.encode())
                if line.lower().startswith(b"sec-websocket-key:")
                else line
                for line in head.split(b"\r\n")
            ]
            return b"\r\n".join(lines)
        return (
            f"GET /ticker HTTP/1.1\r\nHost: {self.authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()


class Counter:
    def __init__(self, method: str, headers: str) -> None:
        self.method = method
        self.headers = headers
        self.bytes: dict[str, int] = {}
        self.requests = 0
        self.empty_responses = 0
        self.segments = 0
        self.received: dict[
            int, int
        ] = {}  # message id → receive time (ns, with the simulated delay)
        self.duplicates = 0
        self.pings = 0

    def add(self, kind: str, n: int) -> None:
        self.bytes[kind] = self.bytes.get(kind, 0) + n

    def deliver(self, ids: list[int], at_ns: int) -> None:
        for i in ids:
            if i in self.received:
                self.duplicates += 1
            else:
                self.received[i] = at_ns


async def _open(
    port: int,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, socket.socket, int]:
    reader, writer = await asyncio.open_connection(HOST, port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer, sock, tcp_segments(sock)


async def _read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"poll answered {head.splitlines()[0]!r}")
    return head, body


def _ids(body: bytes) -> list[int]:
    return [int(line[:6]) for line in body.split(b"\n") if line]


async def poll_user(
    counter: Counter,
    headers: Headers,
    path: str,
    *,
    delay: float,
    interval: float | None,
    offset: float,
    end: float,
) -> None:
    """One polling user on one keep-alive connection; ``interval`` None means long polling."""
    loop = asyncio.get_running_loop()
    reader, writer, sock, segs0 = await _open(headers.port)
    since = 0
    next_tick = loop.time() + offset
    delay_ns = int(delay * 1e9)
    try:
        while loop.time() < end:
            if interval is not None:
                await asyncio.sleep(max(0.0, next_tick - loop.time()))
                next_tick += interval
                if loop.time() >= end:
                    break
            request = headers.poll(path, since)
            await asyncio.sleep(delay)  # upstream
            writer.write(request)
            counter.requests += 1
            counter.add("http_request", len(request))
            try:
                head, body = await asyncio.wait_for(
                    _read_response(reader), max(0.1, end - loop.time() + 2 * delay + 1)
                )
            except TimeoutError:
                break  # a long poll still open when the run ends: its request is counted, nothing came back
            arrived = time.monotonic_ns() + delay_ns  # downstream
            counter.add("http_response_head", len(head))
            ids = _ids(body)
            payload = sum(len(line) for line in body.split(b"\n") if line)
            counter.add("payload", payload)
            counter.add("body_separators", len(body) - payload)
            if not ids:
                counter.empty_responses += 1
            counter.deliver(ids, arrived)
            if ids:
                since = max(since, max(ids))
            await asyncio.sleep(delay)  # the answer is not there before this
    finally:
        counter.segments += tcp_segments(sock) - segs0
        writer.close()


async def websocket_user(
    counter: Counter, headers: Headers, *, delay: float, end: float
) -> None:
    loop = asyncio.get_running_loop()
    reader, writer, sock, segs0 = await _open(headers.port)
    delay_ns = int(delay * 1e9)
    key = __import__("base64").b64encode(os.urandom(16)).decode()
    request = headers.upgrade(key)
    await asyncio.sleep(delay)
    writer.write(request)
    counter.add("upgrade_request", len(request))
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"upgrade refused: {head.splitlines()[0]!r}")
    counter.add("upgrade_response", len(head))
    rng = random.Random(key)

    async def send_later(frame: bytes, kind: str) -> None:
        await asyncio.sleep(delay)
        if not writer.is_closing():
            writer.write(frame)
            counter.add(kind, len(frame))

    pending: set[asyncio.Task[None]] = set()
    try:
        while True:
            remaining = end - loop.time()
            if remaining <= 0:
                break
            try:
                first = await asyncio.wait_for(reader.readexactly(2), remaining)
            except TimeoutError:
                break
            opcode, n = first[0] & 0x0F, first[1] & 0x7F
            hdr = 2
            if n == 126:
                n = int.from_bytes(await reader.readexactly(2), "big")
                hdr += 2
            elif n == 127:
                n = int.from_bytes(await reader.readexactly(8), "big")
                hdr += 8
            payload = await reader.readexactly(n) if n else b""
            arrived = time.monotonic_ns() + delay_ns
            if opcode in (0x1, 0x2):
                counter.add("ws_frame_header", hdr)
                counter.add("payload", n)
                counter.deliver([int(payload[:6])], arrived)
            elif (
                opcode == 0x9
            ):  # ping: answer with a masked pong carrying the same payload
                counter.add("ws_ping", hdr + n)
                counter.pings += 1
                pong = masked_frame(0xA, payload, mask=rng.randbytes(4))
                task = loop.create_task(send_later(pong, "ws_pong"))
                pending.add(task)
                task.add_done_callback(pending.discard)
            elif opcode == 0x8:
                break
    finally:
        for task in list(pending):
            task.cancel()
        counter.segments += tcp_segments(sock) - segs0
        writer.close()
