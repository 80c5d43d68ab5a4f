"""Each line typed is sent to the server; every message the server sends is printed.

python examples/stdin_client.py [URI]      (ws://127.0.0.1:4000 by default; Ctrl-D leaves)
"""

import asyncio
import sys
import threading

import rawws


async def print_messages(ws: rawws.ClientConnection) -> None:
    async for message in ws:
        text = message if isinstance(message, str) else repr(message)
        print(f"< {text}", flush=True)


async def send_lines(ws: rawws.ClientConnection) -> None:
    loop, lines = asyncio.get_running_loop(), asyncio.Queue[str | None]()

    def read() -> None:  # in a thread, since reading stdin blocks; None at its end
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\n"))
        loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read, daemon=True).start()
    while (line := await lines.get()) is not None:
        await ws.send(line)


async def main(uri: str) -> None:
    # read_while_closing: the replies to the last lines still arrive after Ctrl-D.
    async with rawws.connect(uri, read_while_closing=True) as ws:
        printing = asyncio.create_task(print_messages(ws))
        sending = asyncio.create_task(send_lines(ws))
        await asyncio.wait([printing, sending], return_when=asyncio.FIRST_COMPLETED)
        sending.cancel()  # the server closed, or stdin ended: either way we close
        await ws.close()
        await printing


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:4000"))
    except KeyboardInterrupt:
        pass
