"""The floor: a length-prefixed TCP echo on an asyncio ``Protocol``, no HTTP, no WebSocket.

Wire format: 4-byte big-endian length, then that many bytes. The server parses
every message (it does not just bounce bytes) and writes all replies one read
produced in one ``transport.write`` — the least any message server on asyncio
must do, so the gap between it and a WebSocket server is the price of the protocol.
"""

from __future__ import annotations

import argparse
import asyncio

from bench.servers._common import MAX_MESSAGE_BYTES, run, wait_for_signal

_from_bytes = int.from_bytes


class FloorEcho(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        out = []
        start = 0
        end = len(buffer)
        while end - start >= 4:
            size = _from_bytes(buffer[start : start + 4], "big")
            if size > MAX_MESSAGE_BYTES:
                assert self.transport is not None
                self.transport.abort()
                return
            if end - start - 4 < size:
                break
            message = bytes(buffer[start + 4 : start + 4 + size])
            out.append(len(message).to_bytes(4, "big"))
            out.append(message)
            start += 4 + size
        if start:
            del buffer[:start]
        if out:
            assert self.transport is not None
            self.transport.write(b"".join(out))


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FloorEcho, args.host, args.port)
    async with server:
        await wait_for_signal()


if __name__ == "__main__":
    run(main, __doc__)
