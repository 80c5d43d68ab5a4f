"""One load process of the scale study: ``--count`` members of one room, from one source address.

    python -m experiments.scale.members --port P --token T --room R --count N --source 127.0.0.2

Run by ``experiments.scale.room``, several at once, because one process holds
at most its open-files limit of connections and one Python process cannot read
a hundred thousand sockets as fast as the server writes them. It speaks on its
standard streams: it prints ``ready N`` once its N members have joined, then
waits; ``start`` (a line on stdin) resets its counters and CPU reading; ``count``
prints how many deliveries it has had since;
``report`` makes it print one JSON line and exit.

Each message's text is ``seq N at T``: T is the sender's ``time.monotonic_ns()``
in µs, the same clock in every process of this machine, so a member finds its
delivery's latency in the frame itself, with no map shared between processes.
A member keeps no frame: it finds the stamps with one regular expression over
what arrived (C speed, no JSON), which is what keeps the client cheaper than
the server, and checks that the room's ids of what it gets go up by one (the
senders' own numbers need not: two senders' messages may cross on the way).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import sys
import time
from array import array

from experiments.perfkit import raise_fd_limit, upgrade_request
from testkit import masked_frame

#: The room's id of a message, then its stamp: ids go up by one in the room, whichever sender sent it.
STAMP = re.compile(rb'"id":(\d+),"user":"[^"]*","text":"seq (\d+) at (\d+)"')
TAIL_BYTES = 512  # more than one message frame: a stamp cut between two reads is found in the next
BATCH = 100  # connections opened at once
TRIES = 3  # a member refused or cut while joining tries again, as a real client would; counted


class Tally:
    """What every member of this process received: latencies (ms), the last delivery of each message."""

    def __init__(self) -> None:
        self.latencies_ms = array("d")
        self.last_arrival_ms: dict[
            int, float
        ] = {}  # seq → the slowest member's latency
        self.out_of_order = 0
        self.retries = 0
        self.last_refusal = ""

    def reset(self) -> None:
        self.latencies_ms = array("d")
        self.last_arrival_ms.clear()
        self.out_of_order = 0


class Member(asyncio.Protocol):
    """A member that finds the stamps in what arrives; ``count`` counts them, ``last`` is the last room id."""

    __slots__ = ("tally", "joined", "upgraded", "tail", "count", "last", "transport")

    def __init__(self, tally: Tally, joined: asyncio.Future[None]) -> None:
        self.tally = tally
        self.joined = joined
        self.upgraded = False
        self.tail = b""
        self.count = 0
        self.last = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.joined.done():
            said = self.tail[:80] if not self.upgraded else b"after the 101"
            self.joined.set_exception(
                ConnectionError(f"closed before joining: {said!r}")
            )

    def data_received(self, data: bytes) -> None:
        now_us = time.monotonic_ns() // 1000
        window = self.tail + data
        if not self.upgraded:
            head, found, window = window.partition(b"\r\n\r\n")
            if not found:
                self.tail = head
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self.joined.set_exception(
                    ConnectionError(head.split(b"\r\n")[0].decode())
                )
                return
            self.upgraded = True
        if not self.joined.done() and b'"joined"' in window:
            self.joined.set_result(None)
        end = 0
        tally = self.tally
        for match in STAMP.finditer(window):
            room_id, seq = int(match[1]), int(match[2])
            latency_ms = (now_us - int(match[3])) / 1000
            tally.latencies_ms.append(latency_ms)
            if latency_ms > tally.last_arrival_ms.get(seq, -1.0):
                tally.last_arrival_ms[seq] = latency_ms
            if room_id != self.last + 1 and self.last:
                tally.out_of_order += 1
            self.last = room_id
            self.count += 1
            end = match.end()
        self.tail = window[max(end, len(window) - TAIL_BYTES) :]


async def open_member(
    port: int, token: str, room: str, source: str, tally: Tally
) -> Member:
    """A member that has joined; a refused or cut attempt is tried again (``tally.retries``)."""
    for attempt in range(TRIES):
        try:
            return await _open_member(port, token, room, source, tally)
        except (OSError, TimeoutError) as exc:
            if attempt == TRIES - 1:
                raise
            tally.retries += 1
            tally.last_refusal = str(exc)
            await asyncio.sleep(1.0)
    raise AssertionError("unreachable")


async def _open_member(
    port: int, token: str, room: str, source: str, tally: Tally
) -> Member:
    loop = asyncio.get_running_loop()
    joined: asyncio.Future[None] = loop.create_future()
    _, member = await loop.create_connection(
        lambda: Member(tally, joined), "127.0.0.1", port, local_addr=(source, 0)
    )
    assert member.transport is not None
    join = json.dumps({"type": "join", "room": room}).encode()
    member.transport.write(
        upgrade_request(port, "/ws", token=token) + masked_frame(0x1, join)
    )
    await asyncio.wait_for(joined, 120)
    return member


async def run(args: argparse.Namespace) -> None:
    tally = Tally()
    members: list[Member] = []
    for start in range(0, args.count, BATCH):
        members += await asyncio.gather(
            *(
                open_member(args.port, args.token, args.room, args.source, tally)
                for _ in range(min(BATCH, args.count - start))
            )
        )
    print(f"ready {len(members)}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    while (line := (await reader.readline()).strip()) != b"report":
        if line == b"count":  # how many deliveries so far: the study waits for them all
            print(sum(member.count for member in members), flush=True)
        elif line == b"start":
            tally.reset()
            for member in members:
                member.count = member.last = 0
            usage = resource.getrusage(resource.RUSAGE_SELF)
        elif not line:
            return  # the study went away
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    print(
        json.dumps(
            {
                "members": len(members),
                "counts": sorted({m.count for m in members}),
                "received": sum(m.count for m in members),
                "out_of_order": tally.out_of_order,
                "retries": tally.retries,
                "last_refusal": tally.last_refusal,
                "latencies_ms": list(tally.latencies_ms),
                "last_arrival_ms": tally.last_arrival_ms,
                "cpu_s": cpu_s,
            }
        ),
        flush=True,
    )
    for member in members:
        if member.transport is not None:
            member.transport.abort()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--room", default="big")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--source", default="127.0.0.1")
    args = parser.parse_args(argv)
    raise_fd_limit()
    try:  # the bench group's uvloop reads a socket for less CPU than asyncio's own loop
        import uvloop
    except ImportError:
        asyncio.run(run(args))
    else:
        uvloop.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
