"""picows on /echo and /fanout: every data frame goes back as it came (the client sends whole, unfragmented messages).

picows is frame-level: it neither reassembles fragments nor validates UTF-8 in
text, so it does less per message than the others (said in RESULTS.md).
``/fanout`` is picows's own broadcast example: keep the connected transports,
``transport.send`` the frame to each of them but the sender.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from picows import (
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    ws_create_server,
)

from bench.servers._common import MAX_MESSAGE_BYTES, run, wait_for_signal

DATA = (WSMsgType.BINARY, WSMsgType.TEXT, WSMsgType.CONTINUATION)


class Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if (
            kind is WSMsgType.BINARY
            or kind is WSMsgType.TEXT
            or kind is WSMsgType.CONTINUATION
        ):
            transport.send(kind, frame.get_payload_as_memoryview(), frame.fin)
        elif kind is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


class Fanout(WSListener):
    def __init__(self, members: dict[WSTransport, None]) -> None:
        self.members = (
            members  # shared by every /fanout connection; an insertion-ordered set
        )

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.members[transport] = None

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.members.pop(transport, None)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind in DATA:
            payload = (
                frame.get_payload_as_memoryview()
            )  # valid during this call; send() copies it
            fin = frame.fin
            for other in self.members:
                if other is not transport:
                    other.send(kind, payload, fin)
        elif kind is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


def make_route() -> Callable[[WSUpgradeRequest], WSListener | None]:
    members: dict[WSTransport, None] = {}

    def route(request: WSUpgradeRequest) -> WSListener | None:
        if request.path == b"/echo":
            return Echo()
        if request.path == b"/fanout":
            return Fanout(members)
        return None

    return route


async def main(args: argparse.Namespace) -> None:
    server = await ws_create_server(
        make_route(), args.host, args.port, max_frame_size=MAX_MESSAGE_BYTES
    )
    async with server:
        await wait_for_signal()


if __name__ == "__main__":
    run(main, __doc__)
