"""The client's I/O: keep-alive HTTP/1.1 connections over asyncio streams, each call bounded in time.

A ``Connection`` carries one call at a time and is used again while the server
keeps it alive (h11 decides that, in ``wire.Exchange``); a ``Pool`` hands a call
an idle connection or opens one, up to ``size`` at once. A connection that
failed or timed out mid-call is dropped, never reused: its state is unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from rawws.api.errors import ApiUnreachable
from rawws.api.wire import Answer, Endpoint, Exchange

READ_CHUNK = 64 * 1024


class Connection:
    """One TCP (or TLS) connection to the server and its HTTP state."""

    def __init__(
        self,
        endpoint: Endpoint,
        key: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.exchange = Exchange(endpoint, key)
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(
        cls, endpoint: Endpoint, key: str, tls: ssl.SSLContext | None
    ) -> Connection:
        try:
            reader, writer = await asyncio.open_connection(
                endpoint.host,
                endpoint.port,
                ssl=tls if endpoint.tls else None,
                server_hostname=endpoint.host if endpoint.tls else None,
            )
        except (OSError, ssl.SSLError) as error:
            raise ApiUnreachable(
                f"cannot connect to {endpoint.host}:{endpoint.port}: {error}"
            ) from None
        return cls(endpoint, key, reader, writer)

    @property
    def reusable(self) -> bool:
        """Idle in HTTP and not closed by the server meanwhile (its FIN already read)."""
        return (
            self.exchange.idle
            and not self._reader.at_eof()
            and not self._writer.is_closing()
        )

    async def call(self, name: str, body: bytes) -> Answer:
        """Write ``POST /api/v1/<name>`` and read its whole answer (no time limit here: the pool's caller sets it)."""
        try:
            self._writer.write(self.exchange.request(name, body))
            await self._writer.drain()
            while True:
                data = await self._reader.read(READ_CHUNK)
                answer = self.exchange.receive(data)
                if answer is not None:
                    return answer
        except (OSError, ssl.SSLError) as error:
            raise ApiUnreachable(f"the connection failed: {error}") from None

    def abort(self) -> None:
        """Drop the connection at once, unsent bytes and all (a call failed or was cancelled on it)."""
        self._writer.transport.abort()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await self._writer.wait_closed()


class Pool:
    """Up to ``size`` connections to one endpoint; idle ones are reused, failed ones dropped."""

    def __init__(
        self,
        endpoint: Endpoint,
        key: str,
        *,
        size: int,
        timeout: float,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a pool holds at least one connection")
        self.endpoint = endpoint
        self.timeout = timeout
        self._key = key
        self._tls = tls
        if endpoint.tls and tls is None:
            self._tls = ssl.create_default_context()
        self._idle: list[Connection] = []
        self._slots = asyncio.Semaphore(size)
        self._closed = False
        #: connections opened so far: how a test sees that keep-alive held
        self.opened = 0

    async def call(
        self, name: str, body: bytes, timeout: float | None = None
    ) -> Answer:
        """One call on an idle or new connection, within ``timeout`` (the pool's by default) from when a slot is free."""
        if self._closed:
            raise ApiUnreachable("this client is closed")
        limit = self.timeout if timeout is None else timeout
        async with self._slots:
            connection: Connection | None = None
            try:
                async with asyncio.timeout(limit):
                    connection = await self._take()
                    answer = await connection.call(name, body)
            except BaseException as error:
                if connection is not None:
                    connection.abort()  # mid-call: its HTTP state is unknown
                if isinstance(error, TimeoutError):
                    raise ApiUnreachable(f"no answer within {limit:g} s") from None
                raise
            if connection.reusable and not self._closed:
                self._idle.append(connection)
            else:
                await connection.close()
            return answer

    async def _take(self) -> Connection:
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable:
                return connection
            await connection.close()
        self.opened += 1
        return await Connection.open(self.endpoint, self._key, self._tls)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()
