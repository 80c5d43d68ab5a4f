"""Logging in for a ``--user`` client over asyncio: one login, then a fresh single-use ticket per connection.

The access token is renewed with the refresh token shortly before it expires
(and when a ticket request says it has), so a client left running for days
never sends the password again; only a refused refresh (revoked, replayed,
expired) falls back to the password.

The requests and their answers are ``rawws.chatclient.login``'s (sans I/O); this module only
opens a connection per request, with the same TLS settings as the WebSocket itself
(``ssl_context``), so a server the WebSocket trusts is trusted for the login too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

from rawws.chatclient.login import (
    HttpAnswer,
    HttpExchange,
    login_exchange,
    refresh_exchange,
    ticket_exchange,
    tokens_of,
)
from rawws.chatclient.login import ticket as ticket_of
from rawws.chatclient.target import ChatTarget
from rawws.client.connect import ConnectOptions, connect, ssl_context
from rawws.client.connection import ClientConnection

READ_SIZE = 64 * 1024  # bytes asked of the socket per read of an HTTP answer
REFRESH_MARGIN_S = 60.0  # renew the access token when it has less than this left


async def http_exchange(
    target: ChatTarget, exchange: HttpExchange, timeout: float, insecure: bool
) -> HttpAnswer:
    """One HTTP request to the server, on its own connection, within ``timeout``."""
    context = ssl_context(insecure) if target.secure else None
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(
            target.host,
            target.port,
            ssl=context,
            server_hostname=target.host if context else None,
        )
        try:
            writer.write(exchange.request())
            while True:
                answer = exchange.receive_data(await reader.read(READ_SIZE))
                if answer is not None:
                    return answer
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()


class ChatLogin:
    """``--user``: one login, then a fresh single-use ticket per connection; logs in again if the token
    is refused (it expired). The password stays in this object only."""

    def __init__(
        self,
        target: ChatTarget,
        user: str,
        password: str,
        timeout: float,
        insecure: bool,
    ) -> None:
        self.target = target
        self.user = user
        self._password = password
        self._timeout = timeout
        self._insecure = insecure
        self._token: str | None = None
        self._refresh_token: str | None = None
        self._expires_at = 0.0  # time.monotonic() when the access token expires
        self.logins = 0  # password logins so far (the first one, then only after a refused refresh)
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"ChatLogin({self.target.display!r}, user={self.user!r})"

    async def _login(self) -> None:
        exchange = login_exchange(self.target, self.user, self._password)
        self._keep(
            await http_exchange(self.target, exchange, self._timeout, self._insecure)
        )
        self.logins += 1

    async def _renew(self) -> None:
        """The refresh token for a new pair; the password only when there is none or it is refused."""
        if self._refresh_token is not None:
            exchange = refresh_exchange(self.target, self._refresh_token)
            self._refresh_token = None  # single use, whatever the answer
            answer = await http_exchange(
                self.target, exchange, self._timeout, self._insecure
            )
            if answer.status != 401:
                self._keep(answer)  # a 429/5xx raises a retryable AuthFailed
                self.refreshes += 1
                return
        await self._login()

    def _keep(self, answer: HttpAnswer) -> None:
        tokens = tokens_of(answer)
        self._token, self._refresh_token = tokens.access_token, tokens.refresh_token
        self._expires_at = (
            time.monotonic() + tokens.expires_in if tokens.expires_in else float("inf")
        )

    async def ticket(self) -> str:
        if self._token is None:
            await self._login()
        elif time.monotonic() >= self._expires_at - REFRESH_MARGIN_S:
            await self._renew()
        answer = await self._ask_ticket()
        if answer.status == 401:  # the access token expired all the same: renew, once
            await self._renew()
            answer = await self._ask_ticket()
        return ticket_of(answer)

    async def _ask_ticket(self) -> HttpAnswer:
        assert self._token is not None
        exchange = ticket_exchange(self.target, self._token)
        return await http_exchange(self.target, exchange, self._timeout, self._insecure)

    async def open(self, options: ConnectOptions) -> ClientConnection:
        """The chat WebSocket, opened with a fresh ticket."""
        return await connect(self.target.ws_url(await self.ticket()), **options)
