"""Delivery latency under load: ``say`` → delivered to every member of a big room, with the store in the path.

    python -m experiments.perf.latency [--quick] [--members 1000] [--rate 200] [--duration 20] [--db URL | --postgres]

``rawws serve`` (SQLite by default; PostgreSQL with ``--db``, or ``--postgres``
to start a throwaway cluster the way the tests do, fsync off), ``--members``
receivers in one room and ``--senders`` connections posting ``--rate``
messages/s in total (each under the chat's own limit of 10/s) for
``--duration`` seconds. Every message carries its sequence number; the
client stamps when it was sent and when each member's copy arrived (the
same process and clock), so a delivery's latency is arrival − send: the
server's receive, group commit, ack, fan-out and write, plus the load
client's own delay in reading 1,000 sockets (its CPU is reported too).

Figures: p50/p99/max over all deliveries, deliveries checked exactly once
per member, server CPU per delivery, and the messages per burst one member
receives (a group commit's messages are published in one loop turn and
leave in one write per member, so a burst is at least one commit's batch).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pwd
import re
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from experiments.perfkit import (
    CHAT_ENV,
    HOST,
    PASSWORD,
    ServerProcess,
    cpu_seconds,
    raise_fd_limit,
    rawws_command,
    upgrade_request,
)
from testkit import chat_token, free_port, masked_frame

SEQ = re.compile(rb'"type":"message".{0,200}?"text":"seq (\d+)"')


class Receiver(asyncio.Protocol):
    """A member that only finds the sequence numbers in what arrives (C-speed regex, no JSON)."""

    def __init__(self, sent: dict[int, float], joined: asyncio.Event) -> None:
        self.sent = sent
        self.joined_event = joined
        self.latencies: list[float] = []
        self.seqs: list[int] = []
        self.bursts: list[int] = []
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self.upgraded:
            if b"\r\n\r\n" not in data:
                self._tail += data
                return
            self.upgraded = True
            data = (self._tail + data).split(b"\r\n\r\n", 1)[1]
            self._tail = b""
        if b'"joined"' in data:
            self.joined_event.set()
        window = self._tail + data
        found = SEQ.findall(window)
        if found:
            self.bursts.append(len(found))
            for raw in found:
                seq = int(raw)
                self.seqs.append(seq)
                self.latencies.append(now - self.sent[seq])
        cut = window.rfind(b"\x81")  # keep an unfinished frame for the next read
        self._tail = window[cut:] if cut >= 0 and not SEQ.search(window[cut:]) else b""


async def open_receiver(port: int, token: str, sent: dict[int, float]) -> Receiver:
    joined = asyncio.Event()
    loop = asyncio.get_running_loop()
    _, receiver = await loop.create_connection(
        lambda: Receiver(sent, joined), HOST, port
    )
    assert receiver.transport is not None
    receiver.transport.write(upgrade_request(port, "/ws", token=token))
    receiver.transport.write(
        masked_frame(0x1, json.dumps({"type": "join", "room": "big"}).encode())
    )
    await asyncio.wait_for(joined.wait(), 60)
    return receiver


async def latency_run(
    port: int, pid: int, members: int, senders: int, rate: float, duration: float
) -> dict:
    token = chat_token(port, "bench", PASSWORD)
    sent: dict[int, float] = {}
    receivers: list[Receiver] = []
    for start in range(0, members, 100):
        receivers += await asyncio.gather(
            *(
                open_receiver(port, token, sent)
                for _ in range(min(100, members - start))
            )
        )
    writers = []
    for _ in range(senders):
        _, writer = await asyncio.open_connection(HOST, port)
        writer.write(upgrade_request(port, "/ws", token=token))
        writer.write(
            masked_frame(0x1, json.dumps({"type": "join", "room": "big"}).encode())
        )
        writers.append(writer)
    await asyncio.sleep(2.0)
    for receiver in receivers:
        receiver.latencies.clear()
        receiver.seqs.clear()
        receiver.bursts.clear()
    interval = senders / rate  # each sender's period
    cpu0, client0 = cpu_seconds(pid), resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    seq = 0

    async def send(index: int, writer: asyncio.StreamWriter) -> None:
        nonlocal seq
        await asyncio.sleep(
            interval * index / senders
        )  # spread the senders over one period
        tick = time.perf_counter()
        while time.perf_counter() - start < duration:
            seq += 1
            sent[seq] = time.perf_counter()
            writer.write(
                masked_frame(
                    0x1,
                    json.dumps(
                        {"type": "say", "room": "big", "text": f"seq {seq}"}
                    ).encode(),
                )
            )
            tick += interval
            await asyncio.sleep(max(0.0, tick - time.perf_counter()))

    await asyncio.gather(*(send(index, writer) for index, writer in enumerate(writers)))
    total = seq
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline and any(
        len(r.seqs) < total for r in receivers
    ):
        await asyncio.sleep(0.1)
    cpu = cpu_seconds(pid) - cpu0
    client1 = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = (
        client1.ru_utime + client1.ru_stime - client0.ru_utime - client0.ru_stime
    )
    wall = time.perf_counter() - start
    latencies = sorted(value for r in receivers for value in r.latencies)
    missing = sum(total - len(set(r.seqs)) for r in receivers)
    duplicates = sum(len(r.seqs) - len(set(r.seqs)) for r in receivers)
    bursts = sorted(receivers[0].bursts)
    for receiver in receivers:
        assert receiver.transport is not None
        receiver.transport.abort()
    for writer in writers:
        writer.close()

    def pct(values: list[float], q: float) -> float:
        return (
            values[min(len(values) - 1, int(len(values) * q))] * 1e3
            if values
            else float("nan")
        )

    return {
        "members": members,
        "messages": total,
        "deliveries": len(latencies),
        "missing": missing,
        "duplicates": duplicates,
        "p50_ms": pct(latencies, 0.5),
        "p99_ms": pct(latencies, 0.99),
        "max_ms": latencies[-1] * 1e3 if latencies else float("nan"),
        "server_cpu_us_per_delivery": cpu / max(1, len(latencies)) * 1e6,
        "server_cpu_share": cpu / wall,
        "client_cpu_share": client_cpu / wall,
        "burst_median": bursts[len(bursts) // 2] if bursts else 0,
        "burst_max": bursts[-1] if bursts else 0,
        # 200 evenly spaced quantiles of every delivery's latency, for the plot
        "quantiles_ms": [
            latencies[min(len(latencies) - 1, len(latencies) * q // 200)] * 1e3
            for q in range(201)
        ]
        if latencies
        else [],
    }


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """A throwaway PostgreSQL on a free loopback port (``tests/support/postgres.py``'s recipe); its asyncpg URL."""
    from tests.support import postgres as pg

    bin_dir = pg._find_bin_dir()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL binaries (initdb, pg_ctl)")
    runner = pg._runner()
    root = Path(tempfile.mkdtemp(prefix="rawws-bench-pg-"))
    data = root / "data"
    if runner:
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
    init = pg._run(
        [
            *runner,
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            pg.SUPERUSER,
            "--auth=trust",
            "--no-locale",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        root,
    )
    if init.returncode != 0:
        raise SystemExit(f"initdb failed: {init.stderr}")
    port = free_port()
    options = f"-k {root} -h 127.0.0.1 -p {port} -F -c max_connections=200"
    start = pg._run(
        [
            *runner,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "server.log"),
            "-o",
            options,
            "-w",
            "start",
        ],
        root,
    )
    if start.returncode != 0:
        raise SystemExit(f"pg_ctl start failed: {start.stderr}")
    try:
        yield f"postgresql+asyncpg://{pg.SUPERUSER}@127.0.0.1:{port}/postgres"
    finally:
        pg._run(
            [
                *runner,
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            root,
        )
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.perf.latency", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="100 members, 50 msg/s for 5 s (a smoke run)",
    )
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=40)
    parser.add_argument(
        "--rate", type=float, default=200.0, help="messages/s over all senders"
    )
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument(
        "--db", help="database URL (default: SQLite in a fresh data dir)"
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="start a throwaway PostgreSQL and use it",
    )
    parser.add_argument(
        "--no-uvloop", action="store_true", help="run the load client on asyncio's loop"
    )
    parser.add_argument("--json", help="write the raw figures here")
    args = parser.parse_args(argv)
    if args.quick:
        args.members, args.senders, args.rate, args.duration = 100, 10, 50.0, 5.0
    if args.rate / args.senders > 10:
        parser.error(
            "each sender must stay under the chat's 10 messages/s: add --senders"
        )
    raise_fd_limit()
    if not args.no_uvloop:
        import uvloop  # the load client's own loop: reading 1,000 sockets costs it less than asyncio's

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    with contextlib.ExitStack() as stack:
        if args.postgres:
            args.db = stack.enter_context(postgres_cluster())
        command = rawws_command(*(["--db", args.db] if args.db else []))
        server = ServerProcess("rawws", command, CHAT_ENV).start()
        try:
            result = asyncio.run(
                latency_run(
                    server.port,
                    server.pid,
                    args.members,
                    args.senders,
                    args.rate,
                    args.duration,
                )
            )
        finally:
            server.stop()
    result["store"] = "PostgreSQL" if args.db else "SQLite"
    result["rate"] = args.rate
    print(
        "| store | members | msg/s | deliveries | missing | dup | p50 ms | p99 ms | max ms | server CPU µs / delivery "
        "| server CPU share | client CPU share | burst median / max |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    print(
        f"| {result['store']} | {args.members} | {args.rate:.0f} | {result['deliveries']} | {result['missing']} "
        f"| {result['duplicates']} | {result['p50_ms']:.1f} | {result['p99_ms']:.1f} | {result['max_ms']:.1f} "
        f"| {result['server_cpu_us_per_delivery']:.2f} | {result['server_cpu_share']:.0%} "
        f"| {result['client_cpu_share']:.0%} | {result['burst_median']} / {result['burst_max']} |"
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)
    return 0 if os.environ.get("BENCH_STRICT") != "1" or (result["missing"] == 0) else 1


if __name__ == "__main__":
    sys.exit(main())
