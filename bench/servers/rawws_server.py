"""`rawws serve …` plus a ``/fanout`` endpoint, on the stdlib event loop or (``--uvloop``) on uvloop.

The server is the one ``rawws serve`` builds — the same argument parser, the
same config (``rawws.cli.serve_config``), the same routes (``rawws.app.setup_app``,
so ``/echo`` with ``--echo``), the same ``run_server`` — with one more
WebSocket endpoint added before it starts listening. Usage: the arguments of
``rawws``, with an optional ``--uvloop`` first::

    python -m bench.servers.rawws_server [--uvloop] serve --echo --no-compression --port 9000

``/fanout`` is the broadcast the benchmark measures: every message received is
sent, unchanged (binary stays binary), to every *other* open ``/fanout``
connection. It uses the path the chat's fan-out uses (``rawws.chat.hub``): the
message is framed once (server frames are unmasked, so every uncompressed
receiver gets the same bytes) and those bytes are handed to each session with
``send_frame``, which queues them without awaiting; each receiver's queue
leaves in one write per event-loop turn.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from rawws.chat.app import setup_app
from rawws.cli import build_parser, configure_logging, serve
from rawws.core.frames import TunedFrameProtocol
from rawws.server.connection import ServerConnection
from rawws.server.server import Server

FANOUT_PATH = "/fanout"

_ENCODER = TunedFrameProtocol(
    client=False, extensions=[]
)  # what rawws.chat.hub frames chat messages with


def server_frame(message: str | bytes) -> bytes:
    """One unmasked, uncompressed, unfragmented server frame: text for ``str``, binary for ``bytes``."""
    return bytes(_ENCODER.send_data(message, True))


class FanoutHandler:
    """Every message goes to every other open connection on the endpoint, framed once."""

    def __init__(self) -> None:
        self.sessions: dict[ServerConnection, None] = {}  # an insertion-ordered set

    def on_open(self, session: ServerConnection) -> None:
        self.sessions[session] = None

    def on_message(self, session: ServerConnection, data: str | bytes) -> None:
        frame = server_frame(data)
        for other in list(
            self.sessions
        ):  # a copy: a slow receiver may be closed while we iterate
            if other is not session:
                other.send_frame(frame)

    def on_close(self, session: ServerConnection, code: int) -> None:
        self.sessions.pop(session, None)


async def setup(server: Server) -> None:
    await setup_app(server)
    server.add_websocket(FANOUT_PATH, FanoutHandler())


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    if argv[:1] == ["--uvloop"]:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        argv = argv[1:]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "serve":
        parser.error("only `serve` is supported here")
    configure_logging(args.log_level)
    return serve(parser, args, setup)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
