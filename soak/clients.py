"""Chat clients that keep exact books: what they said and how it was answered, what they received and in
which order. They reconnect after any drop (a restart, a kill) and re-join with ``since``.

A room's ids count its messages and its membership events together (another soak client's
first join of a public room is stored as its next id and arrives as a ``member`` frame), so the
books record both: the ids a client receives in a room are then consecutive from its join on."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
from dataclasses import dataclass, field

import websockets
from websockets.exceptions import WebSocketException

TEXT_PAD = 48  # characters of a normal message
MEMBER_MARK = "\x00"  # begins a member event's entry in the books: no message text may contain NUL


def member_entry(event: str, user: str | None, by: str | None) -> str:
    """What the books keep of a membership event, in place of a message's text. It starts with
    ``MEMBER_MARK``, which no message text may contain (the server refuses NUL), so it never
    passes for a message."""
    return f"{MEMBER_MARK}{event} {user} by {by}"


@dataclass
class Books:
    """One client's accounts. Sent refs end in exactly one of acked, refused or unresolved."""

    name: str
    acked: dict[str, tuple[str, int, str]] = field(
        default_factory=dict
    )  # ref → (room, id, text)
    refused: dict[str, str] = field(
        default_factory=dict
    )  # ref → error code (unavailable, rate_limited…)
    unresolved: dict[str, tuple[str, str]] = field(
        default_factory=dict
    )  # ref → (room, text): dropped unanswered
    received: dict[str, list[int]] = field(
        default_factory=dict
    )  # room → ids in arrival order, of messages and member events alike
    base: dict[str, int] = field(
        default_factory=dict
    )  # room → the last id when first joined: owed all after it
    texts: dict[tuple[str, int], str] = field(
        default_factory=dict
    )  # (room, id) → a message's text or a member event's ``member_entry``
    member_events = 0  # member frames received (counted in ``received`` too)
    sent = 0
    reconnects = 0
    errors_without_ref = 0


class ChatClient:
    def __init__(
        self,
        name: str,
        token: str,
        port: int,
        rooms: list[str],
        *,
        text_chars: int = TEXT_PAD,
    ) -> None:
        self.name = name
        self.token = token
        self.port = port
        self.rooms = rooms
        self.text_chars = text_chars
        self.books = Books(name)
        self.last: dict[str, int | None] = {room: None for room in rooms}
        self._pending: dict[str, tuple[str, str]] = {}
        self._seq = itertools.count(1)
        self.connected = asyncio.Event()

    async def run(
        self,
        stop: asyncio.Event,
        interval_s: float,
        sending: asyncio.Event | None = None,
    ) -> None:
        rng = random.Random(self.name)
        while not stop.is_set():
            try:
                async with websockets.connect(
                    f"ws://127.0.0.1:{self.port}/ws",
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    proxy=None,
                    open_timeout=5,
                    close_timeout=2,
                    ping_interval=None,
                    max_size=None,
                ) as ws:
                    await self._session(ws, stop, interval_s, rng, sending)
            except (OSError, WebSocketException, TimeoutError):
                pass
            finally:
                self.connected.clear()
                self.books.unresolved.update(self._pending)
                self._pending.clear()
            if not stop.is_set():
                self.books.reconnects += 1
                await asyncio.sleep(0.2 + rng.random() * 0.5)

    async def _session(
        self,
        ws: websockets.ClientConnection,
        stop: asyncio.Event,
        interval_s: float,
        rng: random.Random,
        sending: asyncio.Event | None,
    ) -> None:
        for room in self.rooms:
            frame: dict[str, object] = {"type": "join", "room": room}
            if self.last[room] is not None:
                frame["since"] = self.last[room]
            await ws.send(json.dumps(frame))
        reader = asyncio.create_task(self._read(ws))
        try:
            while not stop.is_set() and not reader.done():
                if sending is None or sending.is_set():
                    room = rng.choice(self.rooms)
                    ref = f"{self.name}-{next(self._seq)}"
                    text = f"{ref}:".ljust(self.text_chars, "x")
                    self._pending[ref] = (room, text)
                    self.books.sent += 1
                    await ws.send(
                        json.dumps(
                            {"type": "say", "room": room, "text": text, "ref": ref}
                        )
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        asyncio.shield(reader), interval_s * (0.5 + rng.random())
                    )
            if stop.is_set():
                await (
                    self._settle()
                )  # every ack of what was said comes back before the books close
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _settle(self) -> None:
        for _ in range(100):
            if not self._pending:
                return
            await asyncio.sleep(0.05)

    def _receive(self, room: str, room_id: int, entry: str) -> bool:
        """One id of one of our rooms, a message's or a member event's: into the books."""
        if room not in self.last:
            return False
        self.books.received.setdefault(room, []).append(room_id)
        self.books.texts[(room, room_id)] = entry
        last = self.last[room]
        self.last[room] = room_id if last is None else max(last, room_id)
        return True

    async def _read(self, ws: websockets.ClientConnection) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind == "welcome":
                self.connected.set()
            elif kind == "message":
                self._receive(frame["room"], int(frame["id"]), frame["text"])
            elif kind == "member":
                if self._receive(
                    frame["room"],
                    int(frame["id"]),
                    member_entry(frame["event"], frame.get("user"), frame.get("by")),
                ):
                    self.books.member_events += 1
            elif kind == "joined":
                room = frame["room"]
                if (
                    self.last.get(room, 0) is None
                ):  # the first join: what it owes starts after what exists (our own joined event included)
                    self.last[room] = int(frame["last_id"])
                    self.books.base[room] = int(frame["last_id"])
            elif kind == "ack":
                pending = self._pending.pop(frame.get("ref"), None)
                if pending is not None:
                    self.books.acked[frame["ref"]] = (
                        frame["room"],
                        int(frame["id"]),
                        pending[1],
                    )
            elif kind == "error":
                ref = frame.get("ref")
                if ref in self._pending:
                    self._pending.pop(ref)
                    self.books.refused[ref] = frame.get("code", "?")
                else:
                    self.books.errors_without_ref += 1
