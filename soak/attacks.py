"""What a hostile or broken peer does, on raw sockets: slowloris, silence, a reader that never reads,
malformed frames and JSON. Each returns what it saw, for the table."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import time
from dataclasses import dataclass

from testkit import masked_frame

KEY = base64.b64encode(b"soak-soak-soak-1").decode()


def upgrade_head(port: int, token: str | None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n"
    ).encode()


@dataclass
class HeldSockets:
    """Slowloris or silent sockets: how many the server closed, and the longest any was held."""

    opened: int = 0
    closed_by_server: int = 0
    longest_held_s: float = 0.0


async def hold(
    port: int, count: int, *, trickle: bool, give_up_s: float
) -> HeldSockets:
    """``count`` sockets that send a request head one byte a second (``trickle``) or nothing at all."""
    result = HeldSockets()

    async def one() -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return
        result.opened += 1
        began = time.monotonic()
        head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200

        async def until_closed() -> None:
            while await reader.read(4096):
                pass

        closed = asyncio.create_task(until_closed())
        try:
            async with asyncio.timeout(give_up_s):
                for byte in head if trickle else b"":
                    if closed.done() or writer.transport.is_closing():
                        break
                    writer.write(bytes([byte]))
                    await asyncio.wait({closed}, timeout=1.0)
                await closed
            result.closed_by_server += 1
        except ConnectionResetError:
            result.closed_by_server += 1
        except (TimeoutError, OSError):
            pass  # still held when we gave up: counted as not closed
        finally:
            result.longest_held_s = max(result.longest_held_s, time.monotonic() - began)
            closed.cancel()
            writer.close()

    await asyncio.gather(*(one() for _ in range(count)))
    return result


@dataclass
class SlowReader:
    joined_at: float = 0.0
    closed_at: float | None = None  # when the server counted it as a slow consumer
    saw_close_frame: bool = False
    tcp_dropped: bool = False


async def slow_reader(
    port: int, token: str, room: str
) -> tuple[socket.socket, SlowReader]:
    """A chat connection on a socket with a 4 KiB receive buffer that joins ``room`` and never reads."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, upgrade_head(port, token))
    data = b""
    async with asyncio.timeout(5):
        while b"\r\n\r\n" not in data:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                raise ConnectionError("slow reader: refused")
            data += chunk
    await loop.sock_sendall(
        sock, masked_frame(0x1, json.dumps({"type": "join", "room": room}).encode())
    )
    return sock, SlowReader(joined_at=time.monotonic())


async def drain_slow_reader(
    sock: socket.socket, seen: SlowReader, timeout_s: float
) -> None:
    """Read what the server left: a 1008 close frame (if it got out) then EOF or a reset."""
    loop = asyncio.get_running_loop()
    tail = b""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                chunk = await loop.sock_recv(sock, 65536)
                if not chunk:
                    seen.tcp_dropped = True
                    break
                tail = (tail + chunk)[-64:]
                if b"\x88\x0f\x03\xf0slow consumer" in tail:
                    seen.saw_close_frame = True
    except ConnectionResetError:
        seen.tcp_dropped = True
    except TimeoutError:
        pass
    finally:
        sock.close()


@dataclass
class Hostile:
    frames_sent: int = 0
    connections: int = 0
    replies: int = 0  # error frames and closes the server answered with


HOSTILE_TEXT = [
    b"{not json",
    b"[" * 5000 + b"]" * 5000,
    b'{"type": "say", "room": "lobby"}',
    b'{"type": "nope"}',
    b'{"type": "join", "room": "../../etc"}',
    b'{"type": "say", "room": "lobby", "text": 12}',
    b'"' + b"\\u0000" * 100 + b'"',
    b'{"type": "history", "room": "lobby", "before": 99999999999999999999999}',
]


async def hostile(port: int, token: str, stop: asyncio.Event, per_s: int) -> Hostile:
    """Malformed JSON and bad frames under the load; each connection ends with a frame that must close it
    (invalid UTF-8: 1007, or a reserved opcode: 1002), and a new one starts."""
    result = Hostile()
    n = 0
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.5)
            continue
        result.connections += 1
        try:
            writer.write(upgrade_head(port, token))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            if b" 101 " not in head:
                await asyncio.sleep(0.5)
                continue
            for _ in range(per_s):
                if writer.transport.is_closing():
                    break
                payload = HOSTILE_TEXT[n % len(HOSTILE_TEXT)]
                n += 1
                writer.write(masked_frame(0x1, payload))
                result.frames_sent += 1
            writer.write(
                masked_frame(0x1, b"\xff\xfe invalid utf-8")
                if n % 2
                else masked_frame(0x3, b"reserved opcode")
            )
            result.frames_sent += 1
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    while chunk := await reader.read(65536):
                        result.replies += chunk.count(b'"type":"error"') + chunk.count(
                            b"\x88"
                        )
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            writer.close()
        await asyncio.sleep(1.0)
    return result
