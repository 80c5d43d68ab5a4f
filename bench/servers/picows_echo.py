"""picows echo server: every data frame goes back as it came (the client sends whole, unfragmented messages).

picows is frame-level: it neither reassembles fragments nor validates UTF-8 in
text, so it does less per message than the others (said in RESULTS.md).
"""

from __future__ import annotations

import argparse

from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from bench.servers._common import MAX_MESSAGE_BYTES, run, wait_for_signal


class Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.BINARY or kind is WSMsgType.TEXT or kind is WSMsgType.CONTINUATION:
            transport.send(kind, frame.get_payload_as_memoryview(), frame.fin)
        elif kind is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


def route(request: WSUpgradeRequest) -> WSListener | None:
    return Echo() if request.path == b"/echo" else None


async def main(args: argparse.Namespace) -> None:
    server = await ws_create_server(route, args.host, args.port, max_frame_size=MAX_MESSAGE_BYTES)
    async with server:
        await wait_for_signal()


if __name__ == "__main__":
    run(main, __doc__)
