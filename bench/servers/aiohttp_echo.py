"""aiohttp on /echo and /fanout: ``WebSocketResponse`` with compression off and no access log.

aiohttp has no broadcast helper and no non-awaiting send; ``/fanout`` does
what its own chat example (``examples/web_ws.py``) does: loop over the open
responses and ``await ws.send_bytes`` (``send_str`` for text) on each but the
sender. Uncompressed, that await writes to the transport and returns at once
unless the receiver's buffer is over its limit.
"""

from __future__ import annotations

import argparse

from aiohttp import WSMsgType, web

from bench.servers._common import MAX_MESSAGE_BYTES, run, wait_for_signal

FANOUT = web.AppKey("fanout", set[web.WebSocketResponse])


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, max_msg_size=MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
        elif msg.type is WSMsgType.TEXT:
            await ws.send_str(msg.data)
    return ws


async def fanout(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, max_msg_size=MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    members = request.app[FANOUT]
    members.add(ws)
    try:
        async for msg in ws:
            if msg.type is WSMsgType.BINARY or msg.type is WSMsgType.TEXT:
                binary = msg.type is WSMsgType.BINARY
                for other in tuple(
                    members
                ):  # a copy: the set may change while a send awaits
                    if other is ws or other.closed:
                        continue
                    try:
                        if binary:
                            await other.send_bytes(msg.data)
                        else:
                            await other.send_str(msg.data)
                    except (
                        ConnectionResetError
                    ):  # that receiver is going away; the others still get it
                        pass
    finally:
        members.discard(ws)
    return ws


async def main(args: argparse.Namespace) -> None:
    app = web.Application()
    app[FANOUT] = set()
    app.router.add_get("/echo", echo)
    app.router.add_get("/fanout", fanout)
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
