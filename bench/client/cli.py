"""``python -m bench.client``: run the scenarios asked for, one JSON line each on stdout."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial

import bench.client
from bench.client.common import Target, ValidationError, raise_nofile, wait_quiet
from bench.client.echo import echo_benchmark
from bench.client.fanout import fanout_benchmark
from bench.client.handshake import handshake_benchmark
from bench.client.memory import memory_benchmark
from bench.client.roundtrip import rtt_benchmark

SCENARIOS = ("memory", "echo64", "echo16k", "rtt", "handshakes", "fanout")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.client",
        description=bench.client.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--protocol", choices=["ws", "floor"], default="ws")
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument(
        "--params",
        default="{}",
        help="JSON object of counts (see bench/harness.py PROFILES)",
    )
    args = parser.parse_args(argv)
    p = json.loads(args.params)
    raise_nofile()
    target = Target(args.host, args.port, args.protocol)
    pid = args.server_pid

    def emit(name: str, run: Callable[[], dict], **extra: object) -> None:
        t0 = time.perf_counter()
        try:
            result = run()
            result["ok"] = True
        except (ValidationError, OSError, TimeoutError) as exc:
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        result.update(extra)
        result["scenario"] = name
        result["wall_s"] = time.perf_counter() - t0
        print(json.dumps(result), flush=True)
        wait_quiet(pid)

    for name in args.scenarios.split(","):
        # each scenario's call is bound now (functools.partial), not looked up when it runs
        if name == "memory":
            steps, concurrency = p["memory_steps"], p["memory_concurrency"]
            emit(
                name,
                partial(
                    memory_benchmark, target, pid, steps=steps, concurrency=concurrency
                ),
            )
        elif name in ("echo64", "echo16k"):
            emit(
                name,
                partial(
                    echo_benchmark,
                    target,
                    pid,
                    size=64 if name == "echo64" else 16 * 1024,
                    connections=p[f"{name}_connections"],
                    window=p[f"{name}_window"],
                    warmup_s=p["warmup_s"],
                    duration_s=p["duration_s"],
                    max_messages=p[f"{name}_max_messages"],
                ),
            )
        elif name == "rtt":
            warmup, count = p["rtt_warmup"], p["rtt_count"]
            emit(
                name,
                partial(
                    rtt_benchmark,
                    target,
                    size=64,
                    warmup=warmup,
                    count=count,
                    timeout_s=30.0,
                ),
            )
        elif name == "handshakes":
            emit(
                name,
                partial(
                    handshake_benchmark,
                    target,
                    pid,
                    sequential=p["hs_sequential"],
                    concurrent=p["hs_concurrent"],
                    concurrency=p["hs_concurrency"],
                ),
            )
        elif name == "fanout":
            # one line per receiver count, so a failure at 1,000 keeps the figures at 100
            for n, burst in zip(p["fanout_receivers"], p["fanout_burst"], strict=True):
                emit(
                    name,
                    partial(
                        fanout_benchmark,
                        target,
                        pid,
                        receivers=n,
                        burst=burst,
                        size=p["fanout_size"],
                        duration_s=p["fanout_duration_s"],
                        max_deliveries=p["fanout_max_deliveries"],
                    ),
                    receivers=n,
                )
        else:
            parser.error(f"unknown scenario {name}")
    return 0
