"""websockets (new asyncio implementation) on /echo and /fanout, compression off.

``/fanout`` is the library's documented broadcast: ``broadcast()`` from
``websockets.asyncio.server`` over the set of connections the handler keeps
(as in websockets' "Broadcasting" guide), minus the sender.
"""

from __future__ import annotations

import argparse

from websockets.asyncio.server import ServerConnection, broadcast, serve

from bench.servers._common import MAX_MESSAGE_BYTES, run, wait_for_signal

FANOUT: set[ServerConnection] = set()


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def fanout(ws: ServerConnection) -> None:
    FANOUT.add(ws)
    try:
        async for message in ws:
            broadcast((other for other in FANOUT if other is not ws), message)
    finally:
        FANOUT.discard(ws)


async def handler(ws: ServerConnection) -> None:
    if ws.request is not None and ws.request.path == "/fanout":
        await fanout(ws)
    else:
        await echo(ws)


async def main(args: argparse.Namespace) -> None:
    # Defaults otherwise: keepalive ping every 20 s as rawws does.
    async with serve(
        handler, args.host, args.port, compression=None, max_size=MAX_MESSAGE_BYTES
    ):
        await wait_for_signal()


if __name__ == "__main__":
    run(main, __doc__)
