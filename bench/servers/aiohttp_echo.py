"""aiohttp echo server on /echo: ``WebSocketResponse`` with compression off and no access log."""

from __future__ import annotations

import argparse

from aiohttp import WSMsgType, web

from bench.servers._common import MAX_MESSAGE_BYTES, run, wait_for_signal


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, max_msg_size=MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
        elif msg.type is WSMsgType.TEXT:
            await ws.send_str(msg.data)
    return ws


async def main(args: argparse.Namespace) -> None:
    app = web.Application()
    app.router.add_get("/echo", echo)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    try:
        await wait_for_signal()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    run(main, __doc__)
