"""Send one message, print the reply, exit.

python examples/send_once.py URI MESSAGE      (python examples/send_once.py ws://127.0.0.1:4000 hi)
"""

import asyncio
import sys

import rawws


async def send_once(uri: str, message: str) -> None:
    async with rawws.connect(uri) as ws:
        await ws.send(message)
        print(await ws.recv())


if __name__ == "__main__":
    asyncio.run(send_once(sys.argv[1], sys.argv[2]))
