"""The study's server, run as its own process: rawws's ``Server`` with two polling routes and ``/ticker``."""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from experiments.overhead.common import LONGPOLL_TIMEOUT_S


def serve_main(args: argparse.Namespace) -> int:
    from rawws.config import ServerConfig
    from rawws.core.http import Request, Response, json_response
    from rawws.server.connection import ServerConnection
    from rawws.server.server import Server

    class Ticker:
        def __init__(self) -> None:
            self.messages: list[bytes] = []
            self.published_ns: list[int] = []
            self.sessions: set[ServerConnection] = set()
            self.waiters: list[asyncio.Future[None]] = []
            self.price = 100.0
            self.running: asyncio.Task[None] | None = None

        # -- the WebSocket side: rawws's handler API, as /echo uses it
        def on_open(self, session: ServerConnection) -> None:
            self.sessions.add(session)

        def on_message(self, session: ServerConnection, data: str | bytes) -> None:
            pass

        def on_close(self, session: ServerConnection, code: int) -> None:
            self.sessions.discard(session)

        def publish(self) -> None:
            self.price = max(1.0, self.price + random.gauss(0, 0.25))
            text = f"{len(self.messages) + 1:06d} ACME {self.price:7.2f}"
            self.messages.append(text.encode())
            self.published_ns.append(time.monotonic_ns())
            for session in list(self.sessions):
                session.send_nowait(text)
            waiters, self.waiters = self.waiters, []
            for w in waiters:
                if not w.done():
                    w.set_result(None)

        async def run(self, duration_s: float, rate: float, seed: int) -> None:
            rng = random.Random(seed)
            loop = asyncio.get_running_loop()
            end = loop.time() + duration_s
            while True:
                pause = rng.expovariate(rate)
                if loop.time() + pause > end:
                    break
                await asyncio.sleep(pause)
                self.publish()

        # -- the HTTP side
        def _since(self, request: Request) -> int:
            try:
                return max(0, int(request.query_param("since") or 0))
            except ValueError:
                return 0

        def _answer(self, since: int) -> Response:
            body = b"\n".join(self.messages[since:])
            return Response(
                200,
                [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Cache-Control", "no-store"),
                ],
                body,
            )

        async def poll(self, request: Request) -> Response:
            return self._answer(self._since(request))

        async def longpoll(self, request: Request) -> Response:
            since = self._since(request)
            if len(self.messages) <= since:
                waiter = asyncio.get_running_loop().create_future()
                self.waiters.append(waiter)
                try:
                    await asyncio.wait_for(waiter, LONGPOLL_TIMEOUT_S)
                except TimeoutError:
                    pass
            return self._answer(since)

        async def start(self, request: Request) -> Response:
            duration = float(request.query_param("duration") or 10)
            rate = float(request.query_param("rate") or 1)
            seed = int(request.query_param("seed") or 1)
            self.running = asyncio.get_running_loop().create_task(
                self.run(duration, rate, seed)
            )
            return json_response(200, {"started": True})

        async def log(self, request: Request) -> Response:
            running = self.running is not None and not self.running.done()
            return json_response(
                200, {"published_ns": self.published_ns, "running": running}
            )

    async def main() -> None:
        config = ServerConfig(
            host=args.host,
            port=args.port,
            compression=False,
            ping_interval_s=args.ping_interval,
            ping_timeout_s=max(args.ping_interval, 5.0),
        )
        server = Server(config)
        ticker = Ticker()
        server.router.add("GET", "/poll", ticker.poll)
        server.router.add("GET", "/longpoll", ticker.longpoll)
        server.router.add("GET", "/start", ticker.start)
        server.router.add("GET", "/log", ticker.log)
        server.add_websocket("/ticker", ticker)
        await server.start()
        await server.serve_until_signal()

    asyncio.run(main())
    return 0
