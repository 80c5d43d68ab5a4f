"""A room of many members on one machine, and delivery latency at a steady rate, with the load client
spread over as many processes as it needs (``experiments.scale.members``).

    python -m experiments.scale big  [--members 100000] [--workers 6] [--messages 20] [--interval 1]
    python -m experiments.scale rate [--members 1000] [--rates 100,200,400] [--duration 10] [--postgres]

Both take ``--client c|python``: the load processes are ``members.c``, built
with gcc (the default when gcc is there), or ``members.py``; the same
commands and report, the C one for a fraction of the CPU (``client.py``).

``big``: ``rawws serve --workers W`` (SQLite, the workers sharing the chat
through a throwaway ``redis-server``) and ``--members`` members of one room,
opened by load processes of at most ``--per-process`` members each, each from
a source address of its own (``127.0.0.2``, ``127.0.0.3``, …: one address
reaches one port from about 28,000 ephemeral ports). One sender says
``--messages`` messages ``--interval`` seconds apart. For each message, the
*last member's delay* is its slowest delivery (the sender's stamp to the
arrival, on the machine's one monotonic clock); reported as p50 / p99 over
the messages, with every member's count checked (each message exactly once,
in order) and the server's RSS per member (every server process's ``VmRSS``
after the joins, less before them, ÷ members).

``rate``: ``--members`` members (load processes of ``--per-process``), on SQLite (and on a throwaway
PostgreSQL too with ``--postgres``),
senders posting ``rate`` messages/s in all for ``--duration`` seconds (each
under the chat's limit of 10/s), for each rate of ``--rates`` in turn:
publish → deliver p50 / p99 over every delivery, and the client's CPU per
received message beside the server's CPU per delivery, so the figures are
shown to be the server's, not the client's.

Both print a Markdown table and write the raw figures as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.blocks import write_block
from experiments.cluster.cluster import children, start_redis
from experiments.perf.latency import postgres_cluster
from experiments.perfkit import (
    CHAT_ENV,
    PASSWORD,
    cpu_seconds_total,
    raise_fd_limit,
    rss_kib,
    upgrade_request,
)
from experiments.scale.client import CLIENTS, default_client, members_command
from experiments.scale.report import big_lines, rate_lines
from testkit import chat_token, free_port, masked_frame, start, stop, wait_for_port

ROOM = "big"
LATE_S = 120.0  # a delivery not there this long after the last message is counted lost
SENDER_RATE = 8.0  # messages/s per sender connection, under the chat's 10/s


@dataclass
class Node:
    """``rawws serve`` (with its workers) and what it needs: a data dir, a bus when it has workers."""

    workers: int
    db_url: str | None = None
    #: What ``python -m`` runs with ``serve`` and the flags (``experiments.scale.traced``: under tracemalloc).
    module: str = "rawws"
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    redis: subprocess.Popen[bytes] | None = None
    data_dir: str = field(
        default_factory=lambda: tempfile.mkdtemp(prefix="rawws-scale-")
    )

    def start(self) -> Node:
        flags = ["--ping-interval", "0", "--log-level", "WARNING"]
        if self.workers > 1:
            self.redis, redis_port = start_redis(self.data_dir)
            flags += [
                "--reuse-port",  # a listening socket per worker: the kernel spreads connections evenly
                "--workers",
                str(self.workers),
                "--bus",
                f"redis://127.0.0.1:{redis_port}/0",
            ]
        if self.db_url is not None:
            flags += ["--db", self.db_url]
        self.port = free_port()
        command = [
            sys.executable, "-m", self.module, "serve", "--port", str(self.port),
            "--data-dir", self.data_dir, *flags,
        ]  # fmt: skip
        self.process = start(command, env={**os.environ, **CHAT_ENV})
        wait_for_port(self.port, process=self.process, name="rawws serve")
        time.sleep(1.0 if self.workers > 1 else 0.2)  # every worker listening
        return self

    @property
    def pids(self) -> list[int]:
        assert self.process is not None
        return [self.process.pid, *children(self.process.pid)]

    def rss_kib(self) -> int:
        return sum(rss_kib(pid) for pid in self.pids)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, grace=30)
        if self.redis is not None:
            stop(self.redis, sig=signal.SIGKILL)


class Load:
    """The load processes: ``members`` members of the room, ``per_process`` at most in each."""

    def __init__(
        self, port: int, token: str, members: int, per_process: int, client: str
    ) -> None:
        count = math.ceil(members / per_process)
        command = members_command(client)
        self.processes: list[subprocess.Popen[str]] = []
        for index in range(count):
            share = members // count + (1 if index < members % count else 0)
            self.processes.append(
                subprocess.Popen(
                    [
                        *command,
                        "--port",
                        str(port),
                        "--token",
                        token,
                        "--room",
                        ROOM,
                        "--count",
                        str(share),
                        "--source",
                        f"127.0.0.{2 + index}",
                    ],  # fmt: skip
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )

    def wait_ready(self) -> int:
        joined = 0
        for process in self.processes:
            assert process.stdout is not None
            line = process.stdout.readline().split()
            if line[:1] != ["ready"]:
                raise SystemExit(f"a load process failed (exit {process.wait()})")
            joined += int(line[1])
        return joined

    def say(self, word: str) -> None:
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write(word + "\n")
            process.stdin.flush()

    def received(self) -> int:
        """Deliveries every load process has had since ``start``."""
        self.say("count")
        total = 0
        for process in self.processes:
            assert process.stdout is not None
            total += int(process.stdout.readline())
        return total

    def wait_received(self, expected: int, deadline_s: float) -> None:
        """Until ``expected`` deliveries came or ``deadline_s`` passed: a late delivery is slow, not lost."""
        deadline = time.monotonic() + deadline_s
        while self.received() < expected and time.monotonic() < deadline:
            time.sleep(0.5)

    def reports(self) -> list[dict]:
        self.say("report")
        found = []
        for process in self.processes:
            assert process.stdout is not None
            found.append(json.loads(process.stdout.readline()))
            process.wait(timeout=60)
        return found

    def kill(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


class Drain(asyncio.Protocol):
    """A sender's socket: what comes back (its own messages, acks) is read and dropped."""

    def data_received(self, data: bytes) -> None:
        pass


async def send(
    port: int, token: str, senders: int, rate: float, messages: int
) -> float:
    """``messages`` messages at ``rate``/s over ``senders`` connections; the seconds it took."""
    loop = asyncio.get_running_loop()
    transports = []
    join = json.dumps({"type": "join", "room": ROOM}).encode()
    for _ in range(senders):
        transport, _ = await loop.create_connection(Drain, "127.0.0.1", port)
        transport.write(
            upgrade_request(port, "/ws", token=token) + masked_frame(0x1, join)
        )
        transports.append(transport)
    await asyncio.sleep(1.0)
    began = time.monotonic()
    for seq in range(1, messages + 1):
        text = f"seq {seq} at {time.monotonic_ns() // 1000}"
        say = json.dumps({"type": "say", "room": ROOM, "text": text}).encode()
        transports[seq % senders].write(masked_frame(0x1, say))
        await asyncio.sleep(max(0.0, began + seq / rate - time.monotonic()))
    took = time.monotonic() - began
    await asyncio.sleep(0.5)
    for transport in transports:
        transport.close()
    return took


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return (
        ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else math.nan
    )


def measure(
    node: Node,
    members: int,
    per_process: int,
    senders: int,
    rate: float,
    messages: int,
    client: str,
) -> dict:
    token = chat_token(node.port, "bench", PASSWORD)
    baseline = node.rss_kib()
    load = Load(node.port, token, members, per_process, client)
    try:
        opened = time.monotonic()
        joined = load.wait_ready()
        open_s = time.monotonic() - opened
        time.sleep(2.0)  # the joins' own traffic gone
        rss_after = node.rss_kib()
        load.say("start")
        cpu0 = cpu_seconds_total(node.pids)
        took = asyncio.run(send(node.port, token, senders, rate, messages))
        load.wait_received(joined * messages, LATE_S)
        cpu = cpu_seconds_total(node.pids) - cpu0
        reports = load.reports()
    finally:
        load.kill()
    latencies = [value for report in reports for value in report["latencies_ms"]]
    last: dict[str, float] = {}
    for report in reports:
        for seq, value in report["last_arrival_ms"].items():
            last[seq] = max(value, last.get(seq, 0.0))
    received = sum(report["received"] for report in reports)
    client_cpu = sum(report["cpu_s"] for report in reports)
    return {
        "members": joined,
        "client": client,
        "load_processes": len(reports),
        "open_s": open_s,
        "messages": messages,
        "rate": rate,
        "send_s": took,
        "deliveries": received,
        "lost": joined * messages - received,
        "out_of_order": sum(report["out_of_order"] for report in reports),
        "join_retries": sum(report["retries"] for report in reports),
        "last_refusal": next(
            (r["last_refusal"] for r in reports if r["last_refusal"]), ""
        ),
        "members_short": sum(
            1 for report in reports for count in report["counts"] if count != messages
        ),
        "rss_per_member_kib": (rss_after - baseline) / max(1, joined),
        "server_rss_mib": rss_after / 1024,
        "last_member_p50_ms": quantile(list(last.values()), 0.5),
        "last_member_p99_ms": quantile(list(last.values()), 0.99),
        "delivery_p50_ms": quantile(latencies, 0.5),
        "delivery_p99_ms": quantile(latencies, 0.99),
        "server_cpu_us_per_delivery": cpu / max(1, received) * 1e6,
        "client_cpu_us_per_delivery": client_cpu / max(1, received) * 1e6,
    }


@contextlib.contextmanager
def node_running(workers: int, postgres: bool) -> Iterator[Node]:
    with contextlib.ExitStack() as stack:
        db_url = stack.enter_context(postgres_cluster()) if postgres else None
        node = Node(workers, db_url).start()
        stack.callback(node.stop)
        yield node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenario", choices=["big", "rate"])
    parser.add_argument("--members", type=int)
    parser.add_argument("--per-process", type=int, default=15000)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--rates", default="100,200,400")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument(
        "--postgres", action="store_true", help="rate: PostgreSQL as well as SQLite"
    )
    parser.add_argument(
        "--client",
        choices=CLIENTS,
        default=default_client(),
        help="the load process: members.c built with gcc (the default when gcc is"
        " there), or members.py",
    )
    parser.add_argument("--json", help="write the raw figures here")
    parser.add_argument(
        "--results",
        type=Path,
        help="write the figures as a block of this page (bench/RESULTS.md)",
    )
    args = parser.parse_args(argv)
    raise_fd_limit()
    results: list[dict] = []
    if args.scenario == "big":
        members = args.members or 100_000
        workers = args.workers or max(1, math.ceil(members / 18_000))
        with node_running(workers, postgres=False) as node:
            result = measure(
                node,
                members,
                args.per_process,
                1,
                1 / args.interval,
                args.messages,
                args.client,
            )
        results.append({"workers": workers, **result})
    else:
        members = args.members or 1000
        for postgres in (False, True) if args.postgres else (False,):
            for rate in (float(r) for r in args.rates.split(",")):
                with node_running(args.workers or 1, postgres) as node:
                    senders = max(1, math.ceil(rate / SENDER_RATE))
                    messages = int(rate * args.duration)
                    result = measure(
                        node,
                        members,
                        args.per_process,
                        senders,
                        rate,
                        messages,
                        args.client,
                    )
                db = "postgres" if postgres else "sqlite"
                results.append({"workers": args.workers or 1, "db": db, **result})
                print(json.dumps(results[-1]), file=sys.stderr)
    for result in results:
        print(json.dumps(result))
    if args.results is not None:
        command = "python -m experiments.scale " + " ".join(argv or sys.argv[1:])
        if args.scenario == "big":
            write_block(
                args.results, "scale-big", command, big_lines(results[0], command)
            )
        else:
            write_block(
                args.results, "scale-rate", command, rate_lines(results, command)
            )
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)
    return 0
