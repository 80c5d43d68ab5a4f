"""Chat fan-out: server CPU per delivered message, burst and lock-step, to N receivers in one room.

    python -m experiments.fanout [--receivers 100 1000] [--burst-senders 10] [--rounds 50]

Starts `rawws serve` (compression off on the client side, so the encode-once
path is measured) in its own process with a fresh data dir, registers one user,
and opens N receiver connections plus a few senders with that user's token. The
receivers are cheap raw sockets that count ``"type":"message"`` frames.

* burst: every sender sends its rate-limit burst at once; wait until every
  receiver has every message.
* lock-step: one message, wait until all N receivers have it, next message.

Server CPU (utime + stime from ``/proc/<pid>/stat``) over the phase, divided by
the deliveries (messages × receivers). The machine is shared: read the CPU
figures, not the wall times.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence

from experiments.perfkit import (
    PASSWORD,
    cpu_seconds,
    raise_fd_limit,
)
from testkit import chat_token, free_port, masked_frame, start, stop, wait_for_port

MARK = b'"type":"message"'
BURST_PER_SENDER = (
    20  # the chat's per-connection burst (rawws.config.DEFAULT_CHAT_MESSAGE_BURST)
)


class Peer:
    """A raw WebSocket connection in room ``bench`` that counts chat messages delivered to it.

    It only counts ``MARK`` in the byte stream (a window keeps a mark split over two reads), so a
    thousand of them cost the load client little; ``experiments.cluster`` builds its timing probe on it.
    """

    def __init__(self) -> None:
        self.count = 0
        self._tail = b""
        self.writer: asyncio.StreamWriter | None = None
        self.changed = asyncio.Event()

    async def open(self, port: int, token: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(head.split(b"\r\n")[0].decode())
        self.writer = writer
        self.send({"type": "join", "room": "bench"})
        asyncio.get_running_loop().create_task(self._read(reader))

    def send(self, frame: dict[str, object]) -> None:
        assert self.writer is not None
        self.writer.write(masked_frame(0x1, json.dumps(frame).encode()))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(65536):
            self._received(data)
            self.changed.set()

    def _received(self, data: bytes) -> None:
        window = self._tail + data
        self.count += window.count(MARK)
        self._tail = window[-(len(MARK) - 1) :]


async def wait_all(peers: Sequence[Peer], target: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    for peer in peers:
        while peer.count < target:
            peer.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"a receiver has {peer.count} of {target} messages")
            await asyncio.wait_for(peer.changed.wait(), remaining)


async def measure(
    port: int, pid: int, token: str, receivers: int, burst_senders: int, rounds: int
) -> dict:
    peers = [Peer() for _ in range(receivers)]
    for first in range(0, receivers, 100):
        await asyncio.gather(
            *(peer.open(port, token) for peer in peers[first : first + 100])
        )
    senders = [Peer() for _ in range(burst_senders)]
    await asyncio.gather(*(sender.open(port, token) for sender in senders))
    await asyncio.sleep(1.0)  # joins done
    delivered = 0
    results = {}

    # lock-step: one message at a time, to every receiver, before the next
    cpu0, wall0 = cpu_seconds(pid), time.perf_counter()
    for index in range(rounds):
        senders[index % len(senders)].send(
            {"type": "say", "room": "bench", "text": "x" * 20}
        )
        delivered += 1
        await wait_all(peers, delivered)
        if (index + 1) % (len(senders) * 5) == 0:
            await asyncio.sleep(0.6)  # stay under the per-connection rate limit (10/s)
    cpu = cpu_seconds(pid) - cpu0
    results["lockstep"] = {
        "messages": rounds,
        "deliveries": rounds * receivers,
        "cpu_s": cpu,
        "us_per_delivery": cpu / (rounds * receivers) * 1e6,
        "wall_s": time.perf_counter() - wall0,
    }
    await asyncio.sleep(2.5)  # refill the senders' buckets

    # burst: every sender sends its whole burst at once
    burst = burst_senders * BURST_PER_SENDER
    cpu0, wall0 = cpu_seconds(pid), time.perf_counter()
    for sender in senders:
        for _ in range(BURST_PER_SENDER):
            sender.send({"type": "say", "room": "bench", "text": "x" * 20})
    await wait_all(peers, delivered + burst)
    cpu = cpu_seconds(pid) - cpu0
    results["burst"] = {
        "messages": burst,
        "deliveries": burst * receivers,
        "cpu_s": cpu,
        "us_per_delivery": cpu / (burst * receivers) * 1e6,
        "wall_s": time.perf_counter() - wall0,
    }
    for peer in peers + senders:
        assert peer.writer is not None
        peer.writer.close()
    return results


def run(receivers: int, burst_senders: int, rounds: int) -> dict:
    data_dir = tempfile.mkdtemp(prefix="rawws-fanout-")
    port = free_port()
    server = start(
        [
            sys.executable,
            "-m",
            "rawws",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            data_dir,
            "--log-level",
            "WARNING",
        ],
        env={
            **os.environ,
            "RAWWS_LOGINS_PER_MINUTE_PER_USER": "1000",
            "RAWWS_WEBSOCKETS_PER_USER": "1000000",  # every receiver is the one bench user
            "RAWWS_WEBSOCKETS_PER_ADDRESS": "1000000",  # and comes from 127.0.0.1
        },
    )
    try:
        wait_for_port(port, process=server)
        token = chat_token(port, "bench", PASSWORD)
        return asyncio.run(
            measure(port, server.pid, token, receivers, burst_senders, rounds)
        )
    finally:
        stop(server, grace=20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.fanout", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--receivers", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--burst-senders", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args(argv)
    raise_fd_limit()
    print("| receivers | phase | messages | deliveries | server CPU µs / delivery |")
    print("|---|---|---|---|---|")
    for receivers in args.receivers:
        results = run(receivers, args.burst_senders, args.rounds)
        for phase in ("burst", "lockstep"):
            r = results[phase]
            print(
                f"| {receivers} | {phase} | {r['messages']} | {r['deliveries']} | {r['us_per_delivery']:.2f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
