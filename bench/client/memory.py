"""The memory scenario: the server's RSS per idle connection, N connections at a time."""

from __future__ import annotations

import socket

from bench.client.common import Target, proc_rss_kib, wait_quiet
from bench.client.connections import close_all, open_connections


def memory_benchmark(
    target: Target, pid: int, *, steps: list[int], concurrency: int
) -> dict:
    """Server RSS with N idle connections open, minus the RSS before, per connection."""
    warm, _ = open_connections(
        target, 50, 25, timeout_s=30.0
    )  # first-use allocations, not per-connection
    close_all(target, warm)
    wait_quiet(pid)
    baseline = proc_rss_kib(pid)
    socks: list[socket.socket] = []
    out: dict = {"baseline_rss_kib": baseline, "steps": []}
    try:
        for n in steps:
            more, elapsed = open_connections(
                target, n - len(socks), concurrency, timeout_s=180.0
            )
            socks += more
            wait_quiet(pid)
            rss = proc_rss_kib(pid)
            out["steps"].append(
                {
                    "connections": n,
                    "rss_kib": rss,
                    "per_connection_kib": (rss - baseline) / n,
                    "open_s": elapsed,
                }
            )
    finally:
        close_all(target, socks)
    wait_quiet(pid, limit_s=20.0)
    return out


# -- fan-out -------------------------------------------------------------------------
