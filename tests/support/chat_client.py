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
from collections.abc import AsyncIterator, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from rawws.chat import wire as chat
from rawws.chat.service import ChatHandler
from rawws.chat.wire import MAX_ID, MAX_REF_CHARS, MAX_TEXT_CHARS
from rawws.server.server import Server
from testkit import masked_frame
from tests.support.helpers import (
    TIMEOUT_S,
    access_token,
    http,
    random_key,
    registered_token,
)

PASSWORD = "correct horse battery"

Frame = dict[str, Any]


# -- accounts and health, over the shared HTTP client ------------------------------------


async def new_user(port: int, username: str) -> str:
    """Register ``username`` and log in: its access token."""
    return await registered_token(port, username, PASSWORD)


async def login(port: int, username: str, password: str = PASSWORD) -> str:
    return await access_token(port, username, password)


async def new_users(server: Server, *names: str) -> dict[str, str]:
    """Register every one of ``names`` at once: name → access token."""
    tokens = await asyncio.gather(*(new_user(server.port, name) for name in names))
    return dict(zip(names, tokens, strict=True))


async def healthz(port: int) -> dict:
    reply = await http(port, "GET", "/healthz")
    assert reply.status == 200
    return reply.json


# -- the chat client -----------------------------------------------------------------


class FrameWaits:
    """The frames one client got, in order, and bounded waits on them: ``ChatClient``'s, and the
    other transports' clients' (``tests.support.transport_clients``), so a scenario is written once."""

    user: str
    frames: list[Frame]
    _changed: asyncio.Condition

    def stopped(self) -> str | None:
        """Why no frame can come any more (None while the client goes on)."""
        raise NotImplementedError

    def of_type(self, kind: str, start: int = 0, **fields: object) -> list[Frame]:
        return [
            f
            for f in self.frames[start:]
            if f["type"] == kind and all(f.get(k) == v for k, v in fields.items())
        ]

    def messages(self, room: str, start: int = 0) -> list[Frame]:
        return self.of_type("message", start, room=room)

    def entry_ids(self, room: str, start: int = 0) -> list[int]:
        """The ids of every entry of ``room`` this client got, in the order they came: its
        ``message`` frames and its ``member`` frames (membership events, such as another user's
        first ``join``, take the room's ids too), which together run without a gap from the
        client's own join on."""
        return [
            f["id"]
            for f in self.frames[start:]
            if f["type"] in ("message", "member") and f.get("room") == room
        ]

    async def wait_until(
        self,
        predicate: Callable[[], Any],
        *,
        timeout: float = TIMEOUT_S,
        what: str = "",
    ) -> Any:
        """Wait until ``predicate()`` is truthy (checked on every frame) and return it."""
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    while True:
                        result = predicate()
                        if result:
                            return result
                        stopped = self.stopped()
                        if stopped is not None:
                            raise AssertionError(
                                f"{self.user}: {stopped} waiting for {what}; "
                                f"last frames {self.frames[-5:]}"
                            )
                        await self._changed.wait()
        except TimeoutError:
            tail = self.frames[-5:]
            raise AssertionError(
                f"{self.user}: no {what or predicate} within {timeout}s; last frames {tail}"
            ) from None

    async def wait_frame(
        self, kind: str, *, start: int = 0, timeout: float = TIMEOUT_S, **fields: object
    ) -> Frame:
        """The first frame from index ``start`` on of type ``kind`` whose fields match."""
        found: list[Frame] = await self.wait_until(
            lambda: self.of_type(kind, start, **fields),
            timeout=timeout,
            what=f"{kind} {fields or ''}",
        )
        return found[0]


class ChatClient(FrameWaits):
    """One `/ws` connection; every frame received is kept in ``frames``.

    Besides, message ids are kept per room in ``ids``, acks by ref in ``acks`` and
    errors with a ref in ``errors``. With ``keep_messages=False`` message frames
    are not kept in ``frames`` (only their ids), for clients that get thousands.
    """

    def __init__(
        self, ws: ClientConnection, user: str, *, keep_messages: bool = True
    ) -> None:
        self.ws = ws
        self.user = user
        self.keep_messages = keep_messages
        self.frames: list[Frame] = []
        self.ids: dict[str, list[int]] = {}
        self.acks: dict[str | None, Frame] = {}
        self.errors: dict[str, Frame] = {}
        self.closed: ConnectionClosed | None = (
            None  # set when the connection ended other than 1000/1001
        )
        self.close_code: int | None = (
            None  # the close code the server sent, once closed
        )
        self._changed = asyncio.Condition()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                assert isinstance(raw, str), (
                    f"the server sent a binary frame: {raw[:60]!r}"
                )
                frame = json.loads(raw)
                assert isinstance(frame, dict) and isinstance(frame.get("type"), str), (
                    raw
                )
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

    async def join(
        self, room: str, since: int | None = None, *, timeout: float = TIMEOUT_S
    ) -> Frame:
        """Join and wait for the ``joined`` answer."""
        start = len(self.frames)
        frame: dict[str, object] = {"type": "join", "room": room}
        if since is not None:
            frame["since"] = since
        await self.send(**frame)
        return await self.wait_frame("joined", start=start, timeout=timeout, room=room)

    # -- looking at what came -------------------------------------------------------------

    def stopped(self) -> str | None:
        return f"connection closed ({self.closed})" if self.done else None

    def message_ids(self, room: str, start: int = 0) -> list[int]:
        return [m["id"] for m in self.messages(room, start)]

    def entry_ids(self, room: str, start: int = 0) -> list[int]:
        """Needs the client's message frames kept (``keep_messages``)."""
        assert self.keep_messages
        return super().entry_ids(room, start)

    async def wait_count(
        self,
        kind: str,
        count: int,
        *,
        start: int = 0,
        timeout: float = TIMEOUT_S,
        **fields: object,
    ) -> list[Frame]:
        return await self.wait_until(
            lambda: (
                (found := self.of_type(kind, start, **fields))
                and len(found) >= count
                and found
            ),
            timeout=timeout,
            what=f"{count} × {kind} {fields or ''}",
        )

    async def wait_message_id(
        self, room: str, message_id: int, *, timeout: float = TIMEOUT_S
    ) -> None:
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
        self,
        room: str,
        count: int,
        *,
        prefix: str,
        size: int = 64,
        window: int = 32,
        timeout: float = TIMEOUT_S,
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
    server: Server | int,
    token: str,
    user: str,
    *,
    compression: str | None = None,
    keep_messages: bool = True,
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


@contextlib.asynccontextmanager
async def chatting(
    server: Server, *names: str, **options: Any
) -> AsyncIterator[list[ChatClient]]:
    """Register each of ``names`` once, connect a client for each name in that order, close them all at the end.

    A name given twice is one user with two connections (two tabs). ``options``
    go to every ``connect_chat``.
    """
    tokens = await new_users(server, *dict.fromkeys(names))
    clients: list[ChatClient] = []
    try:
        for name in names:
            clients.append(await connect_chat(server, tokens[name], name, **options))
        yield clients
    finally:
        await close_quietly(*clients)


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
        await asyncio.wait_for(
            asyncio.get_running_loop().sock_sendall(self.sock, data), TIMEOUT_S
        )

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

    async def read_until_close(
        self, timeout: float = TIMEOUT_S
    ) -> tuple[list[tuple[int, bytes]], bool]:
        """Frames [(opcode, payload)] up to and including a close frame; ``True`` if EOF came instead."""
        loop = asyncio.get_running_loop()
        data, self.leftover = self.leftover, b""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    frames, tail = parse_server_frames(data)
                    for index, (opcode, _) in enumerate(frames):
                        if opcode == 0x8:
                            assert index == len(frames) - 1 and tail == b"", (
                                "data after the close frame"
                            )
                            return frames, False
                    try:
                        chunk = await loop.sock_recv(self.sock, 1 << 20)
                    except (ConnectionResetError, BrokenPipeError):
                        chunk = b""
                    if not chunk:
                        return frames, True
                    data += chunk
        except TimeoutError:
            raise AssertionError(
                f"neither a close frame nor EOF within {timeout}s"
            ) from None

    def close(self) -> None:
        self.sock.close()


async def raw_chat_socket(
    port: int, token: str, *, receive_buffer: int = 4096
) -> RawChatSocket:
    """A `/ws` connection on a socket with a small receive buffer, upgraded by hand."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(
        socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer
    )  # before connect: a small window
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
        await asyncio.wait_for(
            loop.sock_sendall(sock, request.encode("latin-1")), TIMEOUT_S
        )
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


def chat_handler(server: Server) -> ChatHandler:
    """The server's ``/ws`` handler: the chat service itself."""
    handler = server.endpoints["/ws"].handler
    assert isinstance(handler, ChatHandler)
    return handler


async def close_quietly(*clients: ChatClient) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


# -- the malformed-frame corpus (the protocol's unit tests, and a live server in test_chat) -------------


def chat_frame(**fields: object) -> str:
    """A client frame's text: ``fields`` as one JSON object."""
    return json.dumps(fields)


# (name, the frame, its exact error code, the ref echoed)
BAD_CASES: list[tuple[str, str | bytes, str, str | None]] = [
    ("invalid json", "{not json", chat.BAD_JSON, None),
    ("truncated json", '{"type": "say", "room": "lobby"', chat.BAD_JSON, None),
    ("empty frame", "", chat.BAD_JSON, None),
    ("json array", "[1, 2, 3]", chat.BAD_JSON, None),
    ("json string", '"say hi"', chat.BAD_JSON, None),
    ("json number", "42", chat.BAD_JSON, None),
    ("json null", "null", chat.BAD_JSON, None),
    ("NaN", "NaN", chat.BAD_JSON, None),
    (
        "integer of 5000 digits",
        '{"type":"join","room":"lobby","since":1' + "0" * 5000 + "}",
        chat.BAD_JSON,
        None,
    ),
    # (deep enough for a RecursionError, within the 64 KiB a /ws frame may be: MAX_FRAME_BYTES)
    ("nesting too deep", "[" * 30_000 + "]" * 30_000, chat.BAD_JSON, None),
    ("binary frame", b'{"type":"say","room":"lobby","text":"hi"}', chat.BINARY, None),
    (
        "unknown type",
        chat_frame(type="dance", room="lobby", ref="r1"),
        chat.BAD_TYPE,
        "r1",
    ),
    (
        "type of another case",
        chat_frame(type="SAY", room="lobby", text="hi", ref="r2"),
        chat.BAD_TYPE,
        "r2",
    ),
    (
        "missing type",
        chat_frame(room="lobby", text="hi", ref="r3"),
        chat.BAD_TYPE,
        "r3",
    ),
    ("type not a string", chat_frame(type=5, room="lobby"), chat.BAD_TYPE, None),
    ("type null", chat_frame(type=None, room="lobby"), chat.BAD_TYPE, None),
    ("missing room", chat_frame(type="join", ref="r4"), chat.BAD_ROOM, "r4"),
    ("room null", chat_frame(type="say", room=None, text="hi"), chat.BAD_ROOM, None),
    ("room not a string", chat_frame(type="join", room=7), chat.BAD_ROOM, None),
    (
        "room uppercase",
        chat_frame(type="say", room="Lobby", text="hi", ref="r5"),
        chat.BAD_ROOM,
        "r5",
    ),
    ("room too long", chat_frame(type="join", room="a" * 33), chat.BAD_ROOM, None),
    (
        "room with a space",
        chat_frame(type="join", room="the lobby"),
        chat.BAD_ROOM,
        None,
    ),
    ("room empty", chat_frame(type="leave", room=""), chat.BAD_ROOM, None),
    (
        "room starting with -",
        chat_frame(type="join", room="-lobby"),
        chat.BAD_ROOM,
        None,
    ),
    ("room with a slash", chat_frame(type="history", room="a/b"), chat.BAD_ROOM, None),
    (
        "room with a newline",
        chat_frame(type="join", room="lobby\n"),
        chat.BAD_ROOM,
        None,
    ),
    ("room non-ascii", chat_frame(type="who", room="lobbý"), chat.BAD_ROOM, None),
    (
        "missing text",
        chat_frame(type="say", room="lobby", ref="r6"),
        chat.BAD_FIELD,
        "r6",
    ),
    (
        "text null",
        chat_frame(type="say", room="lobby", text=None),
        chat.BAD_FIELD,
        None,
    ),
    (
        "text not a string",
        chat_frame(type="say", room="lobby", text=123, ref="r7"),
        chat.BAD_FIELD,
        "r7",
    ),
    (
        "text a list",
        chat_frame(type="say", room="lobby", text=["hi"]),
        chat.BAD_FIELD,
        None,
    ),
    ("empty text", chat_frame(type="say", room="lobby", text=""), chat.BAD_FIELD, None),
    (
        "whitespace text",
        chat_frame(type="say", room="lobby", text=" \t\n\u3000 ", ref="r8"),
        chat.BAD_FIELD,
        "r8",
    ),
    (
        "text too long",
        chat_frame(type="say", room="lobby", text="x" * (MAX_TEXT_CHARS + 1), ref="r9"),
        chat.TOO_LONG,
        "r9",
    ),
    (
        "text with NUL",
        chat_frame(type="say", room="lobby", text="a\x00b", ref="r10"),
        chat.BAD_FIELD,
        "r10",
    ),
    (
        "text with a lone surrogate",
        '{"type":"say","room":"lobby","text":"a\\ud800b","ref":"r11"}',
        chat.BAD_FIELD,
        "r11",
    ),
    (
        "ref not a string",
        chat_frame(type="say", room="lobby", text="hi", ref=5),
        chat.BAD_FIELD,
        None,
    ),
    (
        "ref a list",
        chat_frame(type="say", room="lobby", text="hi", ref=["a"]),
        chat.BAD_FIELD,
        None,
    ),
    (
        "ref too long",
        chat_frame(type="say", room="lobby", text="hi", ref="r" * (MAX_REF_CHARS + 1)),
        chat.BAD_FIELD,
        None,
    ),
    (
        "ref with a lone surrogate",
        '{"type":"say","room":"lobby","text":"hi","ref":"\\udfff"}',
        chat.BAD_FIELD,
        None,
    ),
    (
        "since negative",
        chat_frame(type="join", room="lobby", since=-1, ref="r12"),
        chat.BAD_FIELD,
        "r12",
    ),
    (
        "since a string",
        chat_frame(type="join", room="lobby", since="3"),
        chat.BAD_FIELD,
        None,
    ),
    (
        "since a bool",
        chat_frame(type="join", room="lobby", since=True),
        chat.BAD_FIELD,
        None,
    ),
    (
        "since a float",
        chat_frame(type="join", room="lobby", since=1.5),
        chat.BAD_FIELD,
        None,
    ),
    (
        "since an integral float",
        chat_frame(type="join", room="lobby", since=3.0),
        chat.BAD_FIELD,
        None,
    ),
    (
        "since beyond BIGINT",
        chat_frame(type="join", room="lobby", since=MAX_ID + 1),
        chat.BAD_FIELD,
        None,
    ),
    (
        "limit 0",
        chat_frame(type="history", room="lobby", limit=0),
        chat.BAD_FIELD,
        None,
    ),
    (
        "limit negative",
        chat_frame(type="history", room="lobby", limit=-5),
        chat.BAD_FIELD,
        None,
    ),
    (
        "limit a string",
        chat_frame(type="history", room="lobby", limit="10"),
        chat.BAD_FIELD,
        None,
    ),
    (
        "before 0",
        chat_frame(type="history", room="lobby", before=0, ref="r13"),
        chat.BAD_FIELD,
        "r13",
    ),
    (
        "before a bool",
        chat_frame(type="history", room="lobby", before=False),
        chat.BAD_FIELD,
        None,
    ),
    (
        "before beyond BIGINT",
        chat_frame(type="history", room="lobby", before=10**30),
        chat.BAD_FIELD,
        None,
    ),
]
