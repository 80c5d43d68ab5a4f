"""The round-trip scenario: one connection, one message in flight, each round trip timed."""

from __future__ import annotations

import statistics
import time

from bench.client.common import RECV_SIZE, Target, ValidationError, percentile
from bench.client.connections import close_all, open_connections
from bench.client.frames import prebuilt_frames


def rtt_benchmark(
    target: Target, *, size: int, warmup: int, count: int, timeout_s: float
) -> dict:
    """One connection, one message in flight: ``count`` timed round trips."""
    socks, _ = open_connections(target, 1, 1, timeout_s=10.0)
    s = socks[0]
    s.setblocking(True)
    s.settimeout(5.0)
    requests, replies = prebuilt_frames(target, size, 16, seed=99)
    rep_len = len(replies[0])
    samples: list[int] = []
    deadline = time.monotonic() + timeout_s
    perf = time.perf_counter_ns
    try:
        for n in range(warmup + count):
            j = n % len(requests)
            t0 = perf()
            s.sendall(requests[j])
            buf = s.recv(RECV_SIZE)
            while len(buf) < rep_len:
                more = s.recv(RECV_SIZE)
                if not more:
                    raise ValidationError("server closed during the round-trip test")
                buf += more
            t1 = perf()
            if buf != replies[j]:
                raise ValidationError("round-trip reply does not match")
            if n >= warmup:
                samples.append(t1 - t0)
            if time.monotonic() > deadline:
                break
    finally:
        close_all(target, socks)
    samples.sort()
    return {
        "size": size,
        "round_trips": len(samples),
        "p50_us": percentile(samples, 50) / 1e3,
        "p99_us": percentile(samples, 99) / 1e3,
        "mean_us": statistics.fmean(samples) / 1e3,
    }
