"""Shared start-up for the echo servers: arguments, the event loop, serving until a signal."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

MAX_MESSAGE_BYTES = 1024 * 1024  # rawws's default limit, used by every server


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--uvloop",
        action="store_true",
        help="run on uvloop instead of the stdlib event loop",
    )
    return parser.parse_args()


def install_loop(use_uvloop: bool) -> None:
    if use_uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def wait_for_signal() -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    await stop


def run(
    main: Callable[[argparse.Namespace], Awaitable[None]], description: str
) -> None:
    args = parse_args(description)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    install_loop(args.uvloop)
    asyncio.run(main(args))
