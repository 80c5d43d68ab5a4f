"""websockets (new asyncio implementation) echoing on any path with its default compression.

The peer for compressed connections: websockets' server negotiates permessage-deflate
by default with 12 window bits and memory level 5, keeping a context per connection.
"""

from __future__ import annotations

import argparse

from websockets.asyncio.server import ServerConnection, serve

from bench.servers._common import MAX_MESSAGE_BYTES, run, wait_for_signal


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def main(args: argparse.Namespace) -> None:
    async with serve(
        echo, args.host, args.port, max_size=MAX_MESSAGE_BYTES
    ):  # compression="deflate"
        await wait_for_signal()


if __name__ == "__main__":
    run(main, __doc__)
