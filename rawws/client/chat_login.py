"""Logging in for a ``--user`` client over asyncio: one login, then a fresh single-use ticket per connection.

The requests and their answers are ``rawws.client.login``'s (sans I/O); this module only
opens a connection per request, with the same TLS settings as the WebSocket itself
(``ssl_context``), so a server the WebSocket trusts is trusted for the login too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from rawws.client.connection import ConnectOptions, connect, ssl_context
from rawws.client.login import HttpAnswer, HttpExchange, access_token, login_exchange, ticket_exchange
from rawws.client.login import ticket as ticket_of
from rawws.client.protocol import ClientConnection
from rawws.client.target import ChatTarget

READ_SIZE = 64 * 1024  # bytes asked of the socket per read of an HTTP answer


async def http_exchange(target: ChatTarget, exchange: HttpExchange, timeout: float, insecure: bool) -> HttpAnswer:
    """One HTTP request to the server, on its own connection, within ``timeout``."""
    context = ssl_context(insecure) if target.secure else None
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(
            target.host, target.port, ssl=context, server_hostname=target.host if context else None
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

    def __init__(self, target: ChatTarget, user: str, password: str, timeout: float, insecure: bool) -> None:
        self.target = target
        self.user = user
        self._password = password
        self._timeout = timeout
        self._insecure = insecure
        self._token: str | None = None

    def __repr__(self) -> str:
        return f"ChatLogin({self.target.display!r}, user={self.user!r})"

    async def _login(self) -> None:
        exchange = login_exchange(self.target, self.user, self._password)
        answer = await http_exchange(self.target, exchange, self._timeout, self._insecure)
        self._token = access_token(answer)

    async def ticket(self) -> str:
        if self._token is None:
            await self._login()
        answer = await self._ask_ticket()
        if answer.status == 401:  # the access token expired: log in again, once
            await self._login()
            answer = await self._ask_ticket()
        return ticket_of(answer)

    async def _ask_ticket(self) -> HttpAnswer:
        assert self._token is not None
        exchange = ticket_exchange(self.target, self._token)
        return await http_exchange(self.target, exchange, self._timeout, self._insecure)

    async def open(self, options: ConnectOptions) -> ClientConnection:
        """The chat WebSocket, opened with a fresh ticket."""
        return await connect(self.target.ws_url(await self.ticket()), **options)
