"""The hooks' HTTP client: one ``POST`` per call over asyncio streams and h11, within
``--hook-timeout``, its answer read up to ``MAX_ANSWER_BYTES`` (the body and its meaning:
``rawws.accounts.hook_wire``).

A before-hook (``ask``) ends in a ``Verdict``: the app's, or on a failure the policy's
(``--hook-failure``), marked ``failed`` so the caller answers 503 / ``unavailable`` when it denies.
An after-hook (``post``) only learns whether the app acknowledged it. Every call is counted by kind
and outcome; a failure is logged with its kind and cause, never with the key or the URL's password.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import h11

from rawws.accounts.hook_wire import (
    ALLOWED,
    CONNECT,
    DENIED,
    FAILED,
    BadAnswer,
    Verdict,
    encode_body,
    new_delivery_id,
    parse_answer,
    request_headers,
    sign,
)
from rawws.accounts.tokens import Identity
from rawws.core.counters import Counters
from rawws.core.http import Request
from rawws.core.redact import redact_url
from rawws.errors import HttpError

log = logging.getLogger("rawws.hooks")

#: The most of an answer read; a longer one is a failure (an app's verdict is a few bytes).
MAX_ANSWER_BYTES = 64 * 1024
READ_CHUNK_BYTES = 16 * 1024


class HookFailed(Exception):
    """The app did not answer a call as a hook is answered: its message says why (never the key)."""


class HookClient:
    """Calls the app at ``url``, every body signed with ``secret``."""

    def __init__(
        self,
        url: str,
        secret: bytes,
        timeout_s: float,
        *,
        failure_allows: bool = False,
        counters: Counters | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("a hook URL is http:// or https:// with a host")
        self.shown_url = redact_url(url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.host_header = parts.netloc.rpartition("@")[2]
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._secret = secret
        self.timeout_s = timeout_s
        self.failure_allows = failure_allows
        self.counters = counters if counters is not None else Counters()
        self._ssl = ssl.create_default_context() if self.tls else None

    def __repr__(self) -> str:  # never the key
        return f"HookClient({self.shown_url!r})"

    async def ask(self, kind: str, payload: dict[str, object]) -> Verdict:
        """A before-hook: the app's verdict, or the failure policy's (``failed`` set)."""
        try:
            status, answer = await self.post(
                kind, encode_body(payload), new_delivery_id()
            )
            verdict = parse_answer(status, answer)
        except (HookFailed, BadAnswer) as exc:
            self.counters.hook_call(kind, FAILED)
            log.warning("hook failed hook=%s url=%s: %s", kind, self.shown_url, exc)
            return Verdict(self.failure_allows, "", failed=True)
        self.counters.hook_call(kind, ALLOWED if verdict.allow else DENIED)
        return verdict

    async def post(self, kind: str, body: bytes, delivery: str) -> tuple[int, bytes]:
        """One signed ``POST``: the answer's status and body, or ``HookFailed`` (unreachable, too
        slow, too long, not HTTP)."""
        try:  # asyncio.timeout, not wait_for: 3.11's wait_for may swallow a cancellation
            async with asyncio.timeout(self.timeout_s):
                return await self._exchange(kind, body, delivery)
        except TimeoutError:
            raise HookFailed(f"no answer within {self.timeout_s:g} s") from None
        except (OSError, h11.ProtocolError, ssl.SSLError) as exc:
            raise HookFailed(f"{type(exc).__name__}: {exc}") from None

    async def _exchange(
        self, kind: str, body: bytes, delivery: str
    ) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(
            self.host,
            self.port,
            ssl=self._ssl,
            server_hostname=self.host if self.tls else None,
        )
        try:
            connection = h11.Connection(h11.CLIENT)
            headers = request_headers(
                kind, delivery, sign(self._secret, body), self.host_header, len(body)
            )
            writer.write(
                connection.send(
                    h11.Request(method="POST", target=self.target, headers=headers)
                )
                + (connection.send(h11.Data(data=body)) or b"")
                + (connection.send(h11.EndOfMessage()) or b"")
            )
            await writer.drain()
            return await _read_answer(connection, reader)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass


async def _read_answer(
    connection: h11.Connection, reader: asyncio.StreamReader
) -> tuple[int, bytes]:
    """The final answer's status and body (interim 1xx skipped), at most ``MAX_ANSWER_BYTES`` of it."""
    status = 0
    body = bytearray()
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(READ_CHUNK_BYTES)
            connection.receive_data(data)  # b"" is the end of the stream
            continue
        if isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_ANSWER_BYTES:
                raise HookFailed(f"an answer over {MAX_ANSWER_BYTES} bytes")
        elif isinstance(event, h11.EndOfMessage):
            return status, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            raise HookFailed("closed before an answer")


ConnectCheck = Callable[[Identity, Request], Awaitable[None]]


def connect_check(client: HookClient) -> ConnectCheck:
    """The ``connect`` hook as the upgrade's authenticator asks it, before the 101: a denial is a
    403, a failure the policy denies a 503 (both plain HTTP answers)."""

    async def check(identity: Identity, request: Request) -> None:
        payload: dict[str, object] = {
            "user": identity.user,
            "address": peer_address(request.peer),
        }
        verdict = await client.ask(CONNECT, payload)
        if verdict.allow:
            return
        if verdict.failed:
            raise HttpError(
                503, "the application is unavailable; try again", [("Retry-After", "5")]
            )
        raise HttpError(403, verdict.reason or "refused by the application")

    return check


def peer_address(peer: str) -> str:
    """The client's address without its port: ``[::1]:5000`` → ``::1``, ``10.0.0.1:5000`` → ``10.0.0.1``."""
    if peer.startswith("["):
        return peer[1:].partition("]")[0]
    host, colon, port = peer.rpartition(":")
    return host if colon and port.isdigit() else peer
