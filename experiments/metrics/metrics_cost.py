"""What counting costs: server CPU per echoed message and per fan-out delivery, metrics on, off, and not built in.

    python -m experiments.metrics [--rounds 3] [--duration 3] [--baseline REV] [--write experiments/metrics/METRICS.md]

Three builds of the same server (``bench.servers.rawws_server``: `rawws serve`
plus ``/fanout``), each in its own process, interleaved round by round:

* ``without``: the code of ``--baseline`` (a git revision without the
  counters; by default the last ``main`` merged here, so the only difference
  is this branch's work), extracted with ``git archive`` into a temporary directory;
* ``off``: this tree, no ``--metrics-port`` (the counters still count: they
  are plain ints in the hot path whether anyone scrapes them or not);
* ``on``: this tree with ``--metrics-port``, scraped once a second during the
  timed phases (the scrape's cost lands in the server's CPU too).

The load clients are the benchmark's own (``bench.client``): echo of 64 B
messages on many connections with a sliding window, and a broadcast to N
receivers. The figure is the server's CPU time (utime + stime) divided by the
messages or deliveries, the median over rounds: the machine is shared, so CPU
per unit of work is what is compared, never a wall time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from bench.client.common import Target, raise_nofile
from bench.client.echo import echo_benchmark
from bench.client.fanout import fanout_benchmark
from testkit import free_port, stop, wait_for_port

REPO = Path(__file__).resolve().parents[2]
BUILDS = ("without", "off", "on")


def extract(revision: str) -> Path:
    """``rawws/`` and ``bench/`` of ``revision`` in a temporary directory, with this tree's compiled masker."""
    where = Path(tempfile.mkdtemp(prefix="rawws-metrics-cost-"))
    archive = where / "tree.tar"
    subprocess.run(
        ["git", "archive", "-o", str(archive), revision, "rawws", "bench"],
        cwd=REPO,
        check=True,
    )
    with tarfile.open(archive) as tar:
        tar.extractall(where, filter="data")
    archive.unlink()
    for built in (REPO / "rawws" / "core").glob("_mask*.so"):
        shutil.copy(built, where / "rawws" / "core" / built.name)
    return where


class Scraper(threading.Thread):
    """GET /metrics once a second until stopped; counts the scrapes that answered 200."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.scrapes = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(1.0):
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}/metrics", timeout=5
            ) as answer:
                answer.read()
                self.scrapes += answer.status == 200


def start(
    build: str, baseline_tree: Path, work: Path
) -> tuple[subprocess.Popen[bytes], int, int | None]:
    port = free_port()
    metrics_port = free_port() if build == "on" else None
    command = [
        sys.executable,
        "-m",
        "bench.servers.rawws_server",
        "serve",
        "--echo",
        "--no-compression",
        "--port",
        str(port),
        "--data-dir",
        str(work / f"data-{build}-{port}"),
        "--log-level",
        "WARNING",
    ]
    if metrics_port is not None:
        command += ["--metrics-port", str(metrics_port)]
    cwd = baseline_tree if build == "without" else REPO
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAWWS_")}
    env["PYTHONPATH"] = str(cwd)
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL)
    wait_for_port(port, process=proc)
    return proc, port, metrics_port


def measure(
    build: str, baseline_tree: Path, work: Path, args: argparse.Namespace
) -> dict[str, float]:
    proc, port, metrics_port = start(build, baseline_tree, work)
    scraper = Scraper(metrics_port) if metrics_port is not None else None
    try:
        if scraper is not None:
            scraper.start()
        target = Target("127.0.0.1", port, "ws")
        echo = echo_benchmark(
            target,
            proc.pid,
            size=64,
            connections=args.connections,
            window=args.window,
            warmup_s=0.5,
            duration_s=args.duration,
            max_messages=10_000_000,
        )
        fan = fanout_benchmark(
            target,
            proc.pid,
            receivers=args.receivers,
            burst=10,
            size=64,
            duration_s=args.duration,
            max_deliveries=50_000_000,
        )
    finally:
        if scraper is not None:
            scraper.stopping.set()
            scraper.join(5)
        stop(proc)
    if scraper is not None and scraper.scrapes == 0:
        raise RuntimeError("the metrics listener never answered a scrape")
    return {
        "echo_us": echo["server_cpu_us_per_msg"],
        "echo_msgs_per_s": echo["msgs_per_s"],
        "burst_us": fan["burst"]["server_cpu_us_per_delivery"],
        "lockstep_us": fan["lockstep"]["server_cpu_us_per_delivery"],
    }


def report(
    results: dict[str, list[dict[str, float]]], args: argparse.Namespace, baseline: str
) -> str:
    def median(build: str, key: str) -> float:
        return statistics.median(r[key] for r in results[build])

    rows = [
        ("echo 64 B, server CPU µs / message", "echo_us"),
        (f"fan-out to {args.receivers}, burst, server CPU µs / delivery", "burst_us"),
        (
            f"fan-out to {args.receivers}, lock-step, server CPU µs / delivery",
            "lockstep_us",
        ),
    ]
    lines = [
        "# What counting costs",
        "",
        f"`python -m experiments.metrics --rounds {args.rounds} --duration {args.duration}` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores, shared).",
        "",
        f"*without*: the code of `{baseline[:12]}` (no counters); *off*: counters counting, no `--metrics-port`; "
        "*on*: `--metrics-port`, scraped every second. Median of the rounds, builds interleaved; "
        f"echo: {args.connections} connections × {args.window} in flight; fan-out: the `/fanout` broadcast "
        "(framed once, `send_frame` to each receiver), 10-message bursts and lock-step.",
        "",
        "| figure | without | off | on | off vs without | on vs without |",
        "|---|---|---|---|---|---|",
    ]
    for label, key in rows:
        base, off, on = median("without", key), median("off", key), median("on", key)
        lines.append(
            f"| {label} | {base:.2f} | {off:.2f} | {on:.2f} | {(off / base - 1) * 100:+.1f} % | "
            f"{(on / base - 1) * 100:+.1f} % |"
        )
    lines += [
        "",
        "Every round (µs):",
        "",
        "| build | " + " | ".join(key for _, key in rows) + " |",
        "|---|" + "---|" * len(rows),
    ]
    for build in BUILDS:
        for r in results[build]:
            lines.append(
                f"| {build} | " + " | ".join(f"{r[key]:.2f}" for _, key in rows) + " |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.metrics", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--duration", type=float, default=3.0, help="seconds per timed phase"
    )
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--receivers", type=int, default=200)
    parser.add_argument(
        "--baseline",
        help="git revision without the counters (default: where this branch last merged main)",
    )
    parser.add_argument(
        "--write",
        type=Path,
        help="also write the report here (e.g. experiments/metrics/METRICS.md)",
    )
    args = parser.parse_args(argv)
    raise_nofile()
    if args.baseline is None:
        merge_base = ["git", "merge-base", "HEAD", "main"]
        args.baseline = subprocess.run(
            merge_base, cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    baseline_tree = extract(args.baseline)
    work = Path(tempfile.mkdtemp(prefix="rawws-metrics-data-"))
    results: dict[str, list[dict[str, float]]] = {build: [] for build in BUILDS}
    try:
        for round_no in range(args.rounds):
            for build in BUILDS if round_no % 2 == 0 else tuple(reversed(BUILDS)):
                results[build].append(measure(build, baseline_tree, work, args))
                print(f"round {round_no + 1} {build}: {results[build][-1]}", flush=True)
    finally:
        shutil.rmtree(baseline_tree, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    text = report(results, args, args.baseline)
    print(text)
    if args.write:
        args.write.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
