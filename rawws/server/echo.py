"""The `/echo` endpoint: every message goes back as it came. What Autobahn tests.

It is written with the public coroutine API (``rawws.serve`` takes the same
handler), so the conformance suite tests that API, and through it the
``Inbox`` and the sans-I/O core beneath.
"""

from __future__ import annotations

from rawws.server.connection import ServerConnection


async def echo(connection: ServerConnection) -> None:
    async for message in connection:
        await connection.send(message)
