"""A broadcast chat server: every message a client sends goes to every connected client.

python examples/chat_server.py [PORT]      (4000 by default; Ctrl-C stops it)
"""

import asyncio
import sys

import rawws


class Server:
    def __init__(self) -> None:
        self.clients: set[rawws.ServerConnection] = set()

    def register(self, ws: rawws.ServerConnection) -> None:
        self.clients.add(ws)
        print(f"{ws.request.peer} connects ({len(self.clients)} connected)", flush=True)

    def unregister(self, ws: rawws.ServerConnection) -> None:
        self.clients.discard(ws)
        print(f"{ws.request.peer} leaves ({len(self.clients)} connected)", flush=True)

    def distribute(self, message: str | bytes) -> None:
        # Framed once for everyone; a client too slow to keep up is closed, not waited for.
        rawws.broadcast(self.clients, message)

    async def handler(self, ws: rawws.ServerConnection) -> None:
        self.register(ws)
        try:
            async for message in ws:
                self.distribute(message)
        finally:
            self.unregister(ws)


async def main(port: int) -> None:
    server = Server()
    async with rawws.serve(server.handler, "127.0.0.1", port) as ws_server:
        print(f"listening on ws://127.0.0.1:{ws_server.port}", flush=True)
        await ws_server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 4000))
    except KeyboardInterrupt:
        print("stopped", flush=True)
