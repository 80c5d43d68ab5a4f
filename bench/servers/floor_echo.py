"""The floor: a length-prefixed TCP echo (and broadcast) on an asyncio ``Protocol``, no HTTP, no WebSocket.

Wire format: 4-byte big-endian length, then that many bytes. The server parses
every message (it does not just bounce bytes) and writes all replies one read
produced in one ``transport.write`` — the least any message server on asyncio
must do, so the gap between it and a WebSocket server is the price of the protocol.

Fan-out: a connection whose first 4 bytes are ``FANO`` (the floor's stand-in
for the ``/fanout`` path; as a length it would be far over the limit, so it
cannot be mistaken for a message) joins the broadcast group. Every message it
sends afterwards goes, as it came (length prefix and payload), to every other
member, all messages of one read in one ``transport.write`` per receiver.
"""

from __future__ import annotations

import argparse
import asyncio

from bench.servers._common import MAX_MESSAGE_BYTES, run, wait_for_signal

FANOUT_HELLO = b"FANO"

_from_bytes = int.from_bytes


class Floor(asyncio.Protocol):
    def __init__(self, members: dict[Floor, None]) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.members = members  # the fan-out group, shared by every connection
        self.started = False
        self.fanout = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.members.pop(self, None)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        start = 0
        if not self.started:
            if len(buffer) < 4:
                return
            self.started = True
            if buffer[:4] == FANOUT_HELLO:
                self.fanout = True
                self.members[self] = None
                start = 4
        out = []
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
            payload = b"".join(out)
            if not self.fanout:
                assert self.transport is not None
                self.transport.write(payload)
                return
            for other in self.members:
                if other is not self:
                    other.transport.write(payload)  # type: ignore[union-attr]


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    members: dict[Floor, None] = {}
    server = await loop.create_server(lambda: Floor(members), args.host, args.port)
    async with server:
        await wait_for_signal()


if __name__ == "__main__":
    run(main, __doc__)
