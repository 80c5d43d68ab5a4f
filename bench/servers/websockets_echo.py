"""websockets (new asyncio implementation) echo server on /echo, compression off."""

from __future__ import annotations

import argparse

from websockets.asyncio.server import ServerConnection, serve

from bench.servers._common import MAX_MESSAGE_BYTES, run, wait_for_signal


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def main(args: argparse.Namespace) -> None:
    # Defaults otherwise: keepalive ping every 20 s as rawws does.
    async with serve(echo, args.host, args.port, compression=None, max_size=MAX_MESSAGE_BYTES):
        await wait_for_signal()


if __name__ == "__main__":
    run(main, __doc__)
