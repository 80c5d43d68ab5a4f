"""Cross-node fan-out: several `rawws serve` nodes through Redis, beside one node, and --workers 2 vs 1.

    python -m experiments.cluster [--quick] [--receivers 1000] [--output experiments/cluster/CLUSTER.md]

Every setup runs on this machine, on one SQLite file and (where there is more
than one process) one throwaway ``redis-server``:

* ``single``: one node, no bus (today's figure);
* ``3 nodes``: three nodes on three ports, receivers spread over them, senders on every node;
* ``workers 1`` / ``workers 2``: ``--workers N --bus`` on one port (the kernel spreads connections).

In each, every sender sends its rate-limit burst (20) at once, a few times;
receivers count ``"type":"message"`` frames, and a few probe receivers per
port parse every message to time it from the ``say`` leaving the client to
the message arriving (publish → deliver, through the bus when the receiver
is on another node). Reported: deliveries per second over the bursts, server
CPU (utime + stime of every server process, from ``/proc``) per delivery, and
the latency p50 / p99. The machine is shared and has two cores: compare the
rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from experiments.fanout import fanout
from experiments.fanout.fanout import MARK, wait_all
from experiments.perfkit import (
    PASSWORD,
    cpu_seconds_total,
    raise_fd_limit,
)
from testkit import chat_token, free_port, start, stop, wait_for_port

BURST = 20  # the chat's per-connection burst
SECRET = "bench-cluster-secret-" + "b" * 32


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(p) for p in text)
    return found


class Peer(fanout.Peer):
    """``experiments.fanout``'s counting connection; a ``probe`` parses every frame instead, to time each message."""

    def __init__(self, probe: bool = False) -> None:
        super().__init__()
        self.probe = probe
        self.latencies_ns: list[int] = []
        self._buffer = b""

    def _received(self, data: bytes) -> None:
        if self.probe:
            self._parse(data)
        else:
            super()._received(data)

    def _parse(self, data: bytes) -> None:
        now = time.monotonic_ns()
        buffer = self._buffer + data
        while len(buffer) >= 2:
            length, offset = buffer[1] & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    break
                length, offset = struct.unpack("!H", buffer[2:4])[0], 4
            elif length == 127:
                if len(buffer) < 10:
                    break
                length, offset = struct.unpack("!Q", buffer[2:10])[0], 10
            if len(buffer) < offset + length:
                break
            payload, buffer = (
                buffer[offset : offset + length],
                buffer[offset + length :],
            )
            if MARK in payload:
                self.count += 1
                text = json.loads(payload)["text"]
                self.latencies_ns.append(now - int(text.split(":", 1)[0]))
        self._buffer = buffer


async def measure(
    ports: list[int],
    pids: list[int],
    token: str,
    receivers: int,
    senders_per_port: int,
    bursts: int,
    probes_per_port: int,
) -> dict[str, float]:
    peers = [Peer() for _ in range(receivers)]
    probes = [Peer(probe=True) for _ in range(probes_per_port * len(ports))]
    listeners = peers + probes
    for first in range(0, len(listeners), 100):
        chunk = listeners[first : first + 100]
        await asyncio.gather(
            *(
                p.open(ports[(first + i) % len(ports)], token)
                for i, p in enumerate(chunk)
            )
        )
    senders = [Peer() for _ in range(senders_per_port * len(ports))]
    await asyncio.gather(
        *(s.open(ports[i % len(ports)], token) for i, s in enumerate(senders))
    )
    await asyncio.sleep(1.5)  # joins done, presence settled
    base = [p.count for p in listeners]
    assert len(set(base)) <= 1, "receivers saw different histories before the bench"
    delivered, busy_s, cpu_s = 0, 0.0, 0.0
    for _ in range(bursts):
        cpu0, wall0 = cpu_seconds_total(pids), time.perf_counter()
        for sender in senders:
            for i in range(BURST):
                sender.send(
                    {
                        "type": "say",
                        "room": "bench",
                        "text": f"{time.monotonic_ns()}:{i}",
                    }
                )
        delivered += BURST * len(senders)
        await wait_all(listeners, base[0] + delivered, timeout=180.0)
        busy_s += time.perf_counter() - wall0
        cpu_s += cpu_seconds_total(pids) - cpu0
        await asyncio.sleep(2.5)  # the senders' buckets refill
    for peer in listeners + senders:
        assert peer.writer is not None
        peer.writer.close()
    deliveries = delivered * len(listeners)
    latencies = sorted(lat for p in probes for lat in p.latencies_ns)
    return {
        "messages": delivered,
        "deliveries": deliveries,
        "deliveries_per_s": deliveries / busy_s,
        "us_per_delivery": cpu_s / deliveries * 1e6,
        "p50_ms": latencies[len(latencies) // 2] / 1e6,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] / 1e6,
    }


def start_redis(directory: str) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    process = start(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            directory,
        ]
    )
    wait_for_port(port, process=process, name="redis-server")
    return process, port


def run_setup(
    name: str, receivers: int, senders_per_port: int, bursts: int, probes: int
) -> dict[str, float]:
    data_dir = tempfile.mkdtemp(prefix="rawws-cluster-bench-")
    env = {
        **os.environ,
        "RAWWS_LOGINS_PER_MINUTE_PER_USER": "100000",
        "RAWWS_JWT_SECRET": SECRET,
        "RAWWS_DATA_DIR": data_dir,
        "RAWWS_ARGON2_TIME_COST": "1",
        "RAWWS_ARGON2_MEMORY_KIB": "8192",
        # every connection is one user from 127.0.0.1
        "RAWWS_WEBSOCKETS_PER_USER": "100000",
        "RAWWS_WEBSOCKETS_PER_ADDRESS": "100000",
    }
    redis = None
    servers: list[subprocess.Popen[bytes]] = []
    try:
        flags: list[list[str]]
        if name == "single":
            flags = [[]]
        else:
            redis, redis_port = start_redis(data_dir)
            bus = ["--bus", f"redis://127.0.0.1:{redis_port}/0"]
            flags = {
                "3 nodes": [bus] * 3,
                "workers 1": [[*bus, "--workers", "1"]],
                "workers 2": [[*bus, "--workers", "2"]],
            }[name]
        ports = []
        for extra in flags:
            port = free_port()
            servers.append(
                start(
                    [
                        sys.executable,
                        "-m",
                        "rawws",
                        "serve",
                        "--port",
                        str(port),
                        "--log-level",
                        "WARNING",
                        *extra,
                    ],
                    env=env,
                )
            )
            wait_for_port(port, process=servers[-1])
            ports.append(port)
            time.sleep(
                0.5
            )  # the schema is made by the first node, before the next starts
        pids = [s.pid for s in servers]
        if name == "workers 2":
            time.sleep(1.0)
            pids = pids + [c for s in servers for c in children(s.pid)]
        token = chat_token(ports[0], "bench", PASSWORD)
        return asyncio.run(
            measure(ports, pids, token, receivers, senders_per_port, bursts, probes)
        )
    finally:
        for server in servers:
            stop(server, grace=30)
        if redis is not None:
            stop(redis, sig=signal.SIGKILL)
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.cluster", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="60 receivers, 2 bursts: a smoke run"
    )
    parser.add_argument("--receivers", type=int, default=1000)
    parser.add_argument("--bursts", type=int, default=3)
    parser.add_argument("--output", default=str(Path(__file__).with_name("CLUSTER.md")))
    args = parser.parse_args(argv)
    receivers, bursts = (60, 2) if args.quick else (args.receivers, args.bursts)
    raise_fd_limit()
    rows = []
    for name, senders in (
        ("single", 6),
        ("3 nodes", 2),
        ("workers 1", 6),
        ("workers 2", 6),
    ):
        result = run_setup(name, receivers, senders, bursts, probes=2)
        rows.append(
            f"| {name} | {result['messages']:.0f} | {result['deliveries']:.0f} | {result['deliveries_per_s']:,.0f} |"
            f" {result['us_per_delivery']:.2f} | {result['p50_ms']:.1f} | {result['p99_ms']:.1f} |"
        )
        print(rows[-1], flush=True)
    table = "\n".join(
        [
            "| setup | messages | deliveries | deliveries/s | server CPU µs / delivery | latency p50 ms | p99 ms |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    text = (
        "# Cross-node fan-out\n\n"
        f"`python -m experiments.cluster{' --quick' if args.quick else ''}` on {os.cpu_count()} cores,"
        f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {receivers} receivers (+2 probes per port) in one"
        f" room, 6 senders in all (2 per node for 3 nodes), each sending its burst of {BURST} at once, {bursts} times;"
        " SQLite store; Redis bus where there is more than one process. Latency: from the `say` leaving the"
        " client to the message arriving at a probe (on another node than the sender for two thirds of the"
        " messages with 3 nodes). Server CPU: every server process, Redis not included.\n\n"
        f"{table}\n\n"
        "![server CPU per delivery and latency](plots/cluster.png)\n\n"
        "(`python -m experiments.cluster.plot` draws it from the table above.)\n"
    )
    Path(args.output).write_text(text)
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
