"""rawws as a library on /echo and /fanout: ``rawws.serve`` with coroutine handlers, compression off.

Written the way docs/api.md and the README's library section show it, as the
peers' scripts are written from their own documentation: no chat, no user
store, no ``rawws serve`` wiring, so the figures are the library's own.
``/echo`` is ``async for message in connection: await connection.send(message)``;
``/fanout`` hands every message to ``rawws.broadcast`` with every other open
``/fanout`` connection (as ``examples/chat_server.py`` does): framed once, the
same bytes queued on each receiver without awaiting any of them.

Settings as every server of the benchmark: compression off, 1 MiB messages,
the default keepalive (20 s pings), logging at WARNING. The per-address limit
of open WebSockets (200 by default) is lifted through ``config=``, as
``rawws_server`` lifts it with ``--websockets-per-address``: every load client
connects from 127.0.0.1.
"""

from __future__ import annotations

import argparse

import rawws
from bench.servers._common import MAX_MESSAGE_BYTES, run, wait_for_signal
from rawws.config import ServerConfig

FANOUT: set[rawws.ServerConnection] = set()
ONE_ADDRESS_LIMIT = 1_000_000  # open WebSockets from one client address


async def echo(connection: rawws.ServerConnection) -> None:
    async for message in connection:
        await connection.send(message)


async def fanout(connection: rawws.ServerConnection) -> None:
    FANOUT.add(connection)
    try:
        async for message in connection:
            rawws.broadcast(
                (other for other in FANOUT if other is not connection), message
            )
    finally:
        FANOUT.discard(connection)


async def handler(connection: rawws.ServerConnection) -> None:
    if connection.request.path == "/fanout":
        await fanout(connection)
    else:
        await echo(connection)


async def main(args: argparse.Namespace) -> None:
    async with rawws.serve(
        handler,
        args.host,
        args.port,
        compression=None,
        max_message_size=MAX_MESSAGE_BYTES,
        config=ServerConfig(websockets_per_address=ONE_ADDRESS_LIMIT),
    ):
        await wait_for_signal()  # then closed gracefully on the way out


if __name__ == "__main__":
    run(main, __doc__)
