"""A real little application for the hooks: an asyncio HTTP server (h11) on loopback that checks the
signature of every request it gets, the way an app must, and answers as the test tells it.

Every request is kept (``calls``) with its kind, delivery id, parsed body and whether its signature
verified; one that does not verify is answered 401 and counted in ``bad_signatures``, so a test can
assert that none was ever sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import h11

from rawws.accounts.hook_wire import (
    DELIVERY_HEADER,
    KIND_HEADER,
    SIGNATURE_HEADER,
    verify,
)

SECRET = b"hook-test-key-0123456789abcdef-0123456789"  # >= 32 bytes, as --hook-secret-file needs


@dataclass
class Call:
    kind: str
    delivery: str
    body: dict[str, Any]
    raw: bytes


Answer = tuple[int, bytes]
Decide = Callable[[Call], Answer | Awaitable[Answer]]


def verdict(allow: bool, reason: str | None = None) -> Answer:
    answer: dict[str, object] = {"allow": allow}
    if reason is not None:
        answer["reason"] = reason
    return 200, json.dumps(answer).encode()


def allow_all(call: Call) -> Answer:
    return verdict(True)


class HookApp:
    """The app: ``decide`` answers each verified call (default: allow everything)."""

    def __init__(self, secret: bytes = SECRET, decide: Decide = allow_all) -> None:
        self.secret = secret
        self.decide = decide
        self.calls: list[Call] = []
        self.bad_signatures = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self.tls = False
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/rawws-hooks"

    async def start(self, port: int = 0, tls: ssl.SSLContext | None = None) -> HookApp:
        self.tls = tls is not None
        self.server = await asyncio.start_server(
            self._serve, "127.0.0.1", port, ssl=tls
        )
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in list(self._open):  # Server.close_clients is 3.13's
                writer.close()
            await self.server.wait_closed()
            self.server = None

    def of_kind(self, kind: str) -> list[Call]:
        return [call for call in self.calls if call.kind == kind]

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._open.add(writer)
        connection = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        body = bytearray()
        try:
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    connection.receive_data(await reader.read(65536))
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage) or isinstance(
                    event, h11.ConnectionClosed
                ):
                    break
            assert request is not None
            headers = {
                name.decode().lower(): value.decode() for name, value in request.headers
            }
            raw = bytes(body)
            if not verify(self.secret, raw, headers.get(SIGNATURE_HEADER.lower())):
                self.bad_signatures += 1
                status, answer = 401, b"bad signature"
            else:
                call = Call(
                    headers.get(KIND_HEADER.lower(), ""),
                    headers.get(DELIVERY_HEADER.lower(), ""),
                    json.loads(raw),
                    raw,
                )
                self.calls.append(call)
                decided = self.decide(call)
                status, answer = (
                    await decided if not isinstance(decided, tuple) else decided
                )
            writer.write(
                connection.send(
                    h11.Response(
                        status_code=status,
                        headers=[
                            ("Content-Type", "application/json"),
                            ("Content-Length", str(len(answer))),
                        ],
                    )
                )
                + (connection.send(h11.Data(data=answer)) or b"")
                + (connection.send(h11.EndOfMessage()) or b"")
            )
            await writer.drain()
        except (ConnectionError, h11.ProtocolError):
            pass
        finally:
            self._open.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def nothing_listening() -> str:
    """A hook URL with no app behind it: a loopback port just bound and freed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/rawws-hooks"
