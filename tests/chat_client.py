"""A small chat client for tests: accounts over plain HTTP, `/ws` through the `websockets` library.

``ChatClient`` reads in the background and keeps every frame it got, in order,
as parsed JSON; tests wait (always with a deadline) until what they expect is
there. Raw sockets are used where a library would hide the bytes (a client
that never reads): see ``raw_chat_socket``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from rawws.server.server import Server
from tests.helpers import masked_frame, parse_http_response, random_key, read_until_eof

TIMEOUT_S = 10.0  # the longest any single wait may take before the test fails instead of hanging
PASSWORD = "correct horse battery"

Frame = dict[str, Any]


# -- plain HTTP ------------------------------------------------------------------------


async def http_request(
    port: int, method: str, path: str, body: object | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """One request on its own connection: (status, parsed JSON body or None)."""
    payload = b"" if body is None else json.dumps(body).encode("utf-8")
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    if body is not None:
        head.append("Content-Type: application/json")
    head.append(f"Content-Length: {len(payload)}")
    head.extend(f"{name}: {value}" for name, value in (headers or {}).items())
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT_S)
    try:
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        data, closed = await read_until_eof(reader, TIMEOUT_S)
        assert closed, f"{method} {path}: no complete answer within {TIMEOUT_S}s"
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), TIMEOUT_S)
    status, _, content, _ = parse_http_response(data)
    return status, (json.loads(content) if content else None)


async def register(port: int, username: str, password: str = PASSWORD) -> None:
    status, body = await http_request(port, "POST", "/auth/register", {"username": username, "password": password})
    assert status == 201, f"register {username}: {status} {body}"


async def login(port: int, username: str, password: str = PASSWORD) -> str:
    status, body = await http_request(port, "POST", "/auth/login", {"username": username, "password": password})
    assert status == 200, f"login {username}: {status} {body}"
    return body["access_token"]


async def new_user(port: int, username: str) -> str:
    """Register ``username`` and log in: its access token."""
    await register(port, username)
    return await login(port, username)


async def healthz(port: int) -> dict:
    status, body = await http_request(port, "GET", "/healthz")
    assert status == 200
    return body


# -- the chat client -----------------------------------------------------------------


class ChatClient:
    """One `/ws` connection; every frame received is kept in ``frames``.

    Besides, message ids are kept per room in ``ids``, acks by ref in ``acks`` and
    errors with a ref in ``errors``. With ``keep_messages=False`` message frames
    are not kept in ``frames`` (only their ids), for clients that get thousands.
    """

    def __init__(self, ws: ClientConnection, user: str, *, keep_messages: bool = True) -> None:
        self.ws = ws
        self.user = user
        self.keep_messages = keep_messages
        self.frames: list[Frame] = []
        self.ids: dict[str, list[int]] = {}
        self.acks: dict[str | None, Frame] = {}
        self.errors: dict[str, Frame] = {}
        self.closed: ConnectionClosed | None = None  # set when the connection ended other than 1000/1001
        self.close_code: int | None = None  # the close code the server sent, once closed
        self._changed = asyncio.Condition()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                assert isinstance(raw, str), f"the server sent a binary frame: {raw[:60]!r}"
                frame = json.loads(raw)
                assert isinstance(frame, dict) and isinstance(frame.get("type"), str), raw
                kind = frame["type"]
                if kind == "message":
                    self.ids.setdefault(frame["room"], []).append(frame["id"])
                elif kind == "ack":
                    self.acks[frame["ref"]] = frame
                elif kind == "error" and "ref" in frame:
                    self.errors[frame["ref"]] = frame
                if kind != "message" or self.keep_messages:
                    self.frames.append(frame)
                async with self._changed:
                    self._changed.notify_all()
        except ConnectionClosed as closed:
            self.closed = closed
        finally:
            if self.closed is None:
                with contextlib.suppress(Exception):
                    await self.ws.wait_closed()
            self.close_code = self.ws.close_code
            async with self._changed:
                self._changed.notify_all()

    @property
    def done(self) -> bool:
        return self._reader.done()

    # -- sending ------------------------------------------------------------------------

    async def send(self, **frame: object) -> None:
        await self.ws.send(json.dumps(frame))

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def say(self, room: str, text: str, ref: str | None = None) -> None:
        frame: dict[str, object] = {"type": "say", "room": room, "text": text}
        if ref is not None:
            frame["ref"] = ref
        await self.send(**frame)

    async def join(self, room: str, since: int | None = None, *, timeout: float = TIMEOUT_S) -> Frame:
        """Join and wait for the ``joined`` answer."""
        start = len(self.frames)
        frame: dict[str, object] = {"type": "join", "room": room}
        if since is not None:
            frame["since"] = since
        await self.send(**frame)
        return await self.wait_frame("joined", start=start, timeout=timeout, room=room)

    # -- looking at what came -------------------------------------------------------------

    def of_type(self, kind: str, start: int = 0, **fields: object) -> list[Frame]:
        return [f for f in self.frames[start:] if f["type"] == kind and all(f.get(k) == v for k, v in fields.items())]

    def messages(self, room: str, start: int = 0) -> list[Frame]:
        return self.of_type("message", start, room=room)

    def message_ids(self, room: str, start: int = 0) -> list[int]:
        return [m["id"] for m in self.messages(room, start)]

    async def wait_until(self, predicate: Callable[[], Any], *, timeout: float = TIMEOUT_S, what: str = "") -> Any:
        """Wait until ``predicate()`` is truthy (checked on every frame) and return it."""
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    while True:
                        result = predicate()
                        if result:
                            return result
                        if self.done:
                            raise AssertionError(f"{self.user}: connection closed ({self.closed}) waiting for {what}")
                        await self._changed.wait()
        except TimeoutError:
            tail = self.frames[-5:]
            raise AssertionError(f"{self.user}: no {what or predicate} within {timeout}s; last frames {tail}") from None

    async def wait_frame(self, kind: str, *, start: int = 0, timeout: float = TIMEOUT_S, **fields: object) -> Frame:
        """The first frame from index ``start`` on of type ``kind`` whose fields match."""
        found = await self.wait_until(
            lambda: self.of_type(kind, start, **fields), timeout=timeout, what=f"{kind} {fields or ''}"
        )
        return found[0]

    async def wait_count(self, kind: str, count: int, *, start: int = 0, timeout: float = TIMEOUT_S, **fields: object) -> list[Frame]:
        return await self.wait_until(
            lambda: (found := self.of_type(kind, start, **fields)) and len(found) >= count and found,
            timeout=timeout,
            what=f"{count} × {kind} {fields or ''}",
        )

    async def wait_message_id(self, room: str, message_id: int, *, timeout: float = TIMEOUT_S) -> None:
        """Until a message with id ``message_id`` or higher came in ``room``."""
        await self.wait_until(
            lambda: (ids := self.ids.get(room)) and ids[-1] >= message_id,
            timeout=timeout,
            what=f"message {message_id} in {room}",
        )

    async def wait_ack(self, ref: str, *, timeout: float = TIMEOUT_S) -> Frame:
        """The ``ack`` of ``ref``; an ``error`` for it fails the test."""

        def acked() -> Frame | None:
            if ref in self.errors:
                raise AssertionError(f"{self.user}: {ref} refused: {self.errors[ref]}")
            return self.acks.get(ref)

        return await self.wait_until(acked, timeout=timeout, what=f"ack {ref}")

    async def flood(
        self, room: str, count: int, *, prefix: str, size: int = 64, window: int = 32, timeout: float = TIMEOUT_S
    ) -> list[int]:
        """Say ``count`` messages, at most ``window`` unacknowledged at a time; their ids, in order."""
        for i in range(count):
            if i >= window:
                await self.wait_ack(f"{prefix}{i - window}", timeout=timeout)
            await self.say(room, flood_text(prefix, i, size), ref=f"{prefix}{i}")
        for i in range(max(0, count - window), count):
            await self.wait_ack(f"{prefix}{i}", timeout=timeout)
        return [self.acks[f"{prefix}{i}"]["id"] for i in range(count)]

    async def wait_closed(self, timeout: float = TIMEOUT_S) -> None:
        """Until the server closed the connection and every frame before the close was read."""
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), TIMEOUT_S)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._reader, TIMEOUT_S)


def flood_text(prefix: str, i: int, size: int) -> str:
    head = f"{prefix}{i}:"
    return head + "x" * max(1, size - len(head))


def ws_url(server: Server | int, path: str = "/ws") -> str:
    port = server if isinstance(server, int) else server.port
    return f"ws://127.0.0.1:{port}{path}"


async def connect_chat(
    server: Server | int, token: str, user: str, *, compression: str | None = None, keep_messages: bool = True
) -> ChatClient:
    """A connected client that has read its ``welcome``."""
    ws = await connect(
        ws_url(server),
        additional_headers={"Authorization": f"Bearer {token}"},
        proxy=None,
        open_timeout=TIMEOUT_S,
        close_timeout=TIMEOUT_S,
        compression=compression,
        max_size=None,
        ping_interval=None,
    )
    client = ChatClient(ws, user, keep_messages=keep_messages)
    welcome = await client.wait_frame("welcome")
    assert welcome["user"] == user
    return client


# -- a raw socket that never reads -----------------------------------------------------


class RawChatSocket:
    """A `/ws` connection on a bare socket: after the 101 nothing is read until ``read_to_eof``.

    (An ``asyncio.StreamReader`` would keep reading into its buffer in the
    background: not a client that stopped reading.)
    """

    def __init__(self, sock: socket.socket, leftover: bytes) -> None:
        self.sock = sock
        self.leftover = leftover  # bytes after the 101 head, read with it

    async def send(self, data: bytes) -> None:
        await asyncio.wait_for(asyncio.get_running_loop().sock_sendall(self.sock, data), TIMEOUT_S)

    async def read_to_eof(self, timeout: float = TIMEOUT_S) -> tuple[bytes, bool]:
        """Everything until the server closes: (data, closed); ``closed`` is False on timeout."""
        loop = asyncio.get_running_loop()
        chunks = [self.leftover]
        try:
            async with asyncio.timeout(timeout):
                while chunk := await loop.sock_recv(self.sock, 1 << 20):
                    chunks.append(chunk)
        except TimeoutError:
            return b"".join(chunks), False
        except (ConnectionResetError, BrokenPipeError):
            pass
        return b"".join(chunks), True

    async def read_until_close(self, timeout: float = TIMEOUT_S) -> tuple[list[tuple[int, bytes]], bool]:
        """Frames [(opcode, payload)] up to and including a close frame; ``True`` if EOF came instead."""
        loop = asyncio.get_running_loop()
        data, self.leftover = self.leftover, b""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    frames, tail = parse_server_frames(data)
                    for index, (opcode, _) in enumerate(frames):
                        if opcode == 0x8:
                            assert index == len(frames) - 1 and tail == b"", "data after the close frame"
                            return frames, False
                    try:
                        chunk = await loop.sock_recv(self.sock, 1 << 20)
                    except (ConnectionResetError, BrokenPipeError):
                        chunk = b""
                    if not chunk:
                        return frames, True
                    data += chunk
        except TimeoutError:
            raise AssertionError(f"neither a close frame nor EOF within {timeout}s") from None

    def close(self) -> None:
        self.sock.close()


async def raw_chat_socket(port: int, token: str, *, receive_buffer: int = 4096) -> RawChatSocket:
    """A `/ws` connection on a socket with a small receive buffer, upgraded by hand."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)  # before connect: a small window
    sock.setblocking(False)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), TIMEOUT_S)
        request = (
            "GET /ws HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {random_key()}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n"
            "\r\n"
        )
        await asyncio.wait_for(loop.sock_sendall(sock, request.encode("latin-1")), TIMEOUT_S)
        data = b""
        async with asyncio.timeout(TIMEOUT_S):
            while b"\r\n\r\n" not in data:
                chunk = await loop.sock_recv(sock, 4096)
                assert chunk, f"connection closed during the upgrade: {data!r}"
                data += chunk
    except BaseException:
        sock.close()
        raise
    head, _, leftover = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), f"upgrade refused: {head[:80]!r}"
    return RawChatSocket(sock, leftover)


def client_text_frame(frame: dict) -> bytes:
    return masked_frame(0x1, json.dumps(frame).encode("utf-8"))


def parse_server_frames(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Unmasked, unfragmented server frames in ``data``: [(opcode, payload)], and any incomplete tail."""
    frames: list[tuple[int, bytes]] = []
    at = 0
    while len(data) - at >= 2:
        first, second = data[at], data[at + 1]
        length, header = second & 0x7F, 2
        if length == 126:
            if len(data) - at < 4:
                break
            length, header = int.from_bytes(data[at + 2 : at + 4], "big"), 4
        elif length == 127:
            if len(data) - at < 10:
                break
            length, header = int.from_bytes(data[at + 2 : at + 10], "big"), 10
        if len(data) - at < header + length:
            break
        frames.append((first & 0x0F, data[at + header : at + header + length]))
        at += header + length
    return frames, data[at:]


async def close_quietly(*clients: ChatClient) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def wait_for_condition(predicate: Callable[[], Any], *, timeout: float = TIMEOUT_S, what: str = "") -> Any:
    """Poll ``predicate`` (a server-side condition) until it is truthy, bounded by ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while not (result := predicate()):
                await asyncio.sleep(0.01)
            return result
    except TimeoutError:
        raise AssertionError(f"{what or predicate} not reached within {timeout}s") from None
