"""What the report measures: one ``Metric`` per figure, and the per-round values and ratios behind each."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    scenario: str
    get: Callable[[dict], float | None]
    higher_is_better: bool
    fmt: str = "{:,.0f}"


def _step(i: int) -> Callable[[dict], float | None]:
    def get(r: dict) -> float | None:
        steps = r.get("steps") or []
        return steps[i]["per_connection_kib"] if len(steps) > i else None

    return get


def metrics_for(params: dict) -> list[Metric]:
    steps = params.get("memory_steps", [2000, 10000])
    e64 = f"{params['echo64_connections']} conns × {params['echo64_window']} in flight"
    e16 = (
        f"{params['echo16k_connections']} conns × {params['echo16k_window']} in flight"
    )
    out = [
        Metric(
            "echo64",
            f"echo 64 B ({e64})",
            "msg/s",
            "echo64",
            lambda r: r["msgs_per_s"],
            True,
        ),
        Metric(
            "echo16k",
            f"echo 16 KiB ({e16})",
            "MB/s",
            "echo16k",
            lambda r: r["MB_per_s"],
            True,
            "{:,.1f}",
        ),
        Metric(
            "cpu64",
            "server CPU per 64 B message",
            "µs",
            "echo64",
            lambda r: r["server_cpu_us_per_msg"],
            False,
            "{:,.1f}",
        ),
        Metric(
            "cpu16k",
            "server CPU per 16 KiB message",
            "µs",
            "echo16k",
            lambda r: r["server_cpu_us_per_msg"],
            False,
            "{:,.1f}",
        ),
        Metric(
            "rtt50",
            "round trip p50 (64 B, 1 in flight)",
            "µs",
            "rtt",
            lambda r: r["p50_us"],
            False,
        ),
        Metric(
            "rtt99",
            "round trip p99 (64 B, 1 in flight)",
            "µs",
            "rtt",
            lambda r: r["p99_us"],
            False,
        ),
        Metric(
            "hs_seq",
            "handshakes/s, sequential",
            "/s",
            "handshakes",
            lambda r: r["sequential_per_s"],
            True,
        ),
        Metric(
            "hs_conc",
            f"handshakes/s, {params['hs_concurrency']} concurrent",
            "/s",
            "handshakes",
            lambda r: r["concurrent_per_s"],
            True,
        ),
        Metric(
            "hs_cpu_seq",
            "server CPU per handshake, sequential",
            "µs",
            "handshakes",
            lambda r: r.get("server_cpu_us_per_handshake_seq"),
            False,
        ),
        Metric(
            "hs_cpu_conc",
            f"server CPU per handshake, {params['hs_concurrency']} concurrent",
            "µs",
            "handshakes",
            lambda r: r.get("server_cpu_us_per_handshake_conc"),
            False,
        ),
    ]
    out += fanout_metrics(params)
    for i, n in enumerate(steps):
        out.append(
            Metric(
                f"mem{_tag(n)}",
                f"memory per idle connection at {n:,}",
                "KiB",
                "memory",
                _step(i),
                False,
                "{:,.1f}",
            )
        )
    return out


def _tag(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def _fanout(receivers: int, phase: str, field: str) -> Callable[[dict], float | None]:
    """One figure of one phase of the fan-out line for ``receivers`` (the client emits one line per count)."""

    def get(r: dict) -> float | None:
        return r[phase][field] if r.get("receivers") == receivers else None

    return get


def _kib(mb: Callable[[dict], float | None]) -> Callable[[dict], float | None]:
    """A figure the client gives in MB, in KiB: what a burst adds is a few hundred KiB at most."""

    def get(r: dict) -> float | None:
        value = mb(r)
        return None if value is None else value * 1024

    return get


def fanout_metrics(params: dict) -> list[Metric]:
    """For each receiver count: deliveries/s and server CPU per delivery, burst and lock-step; server memory in bursts."""
    out = []
    # strict=False, like the .get defaults: params without the burst sizes give no fan-out metrics, not an error
    for n, k in zip(
        params.get("fanout_receivers", []), params.get("fanout_burst", []), strict=False
    ):
        tag = _tag(n)
        out += [
            Metric(
                f"fan{tag}",
                f"fan-out to {n:,}, bursts of {k}",
                "deliveries/s",
                "fanout",
                _fanout(n, "burst", "deliveries_per_s"),
                True,
            ),
            Metric(
                f"fan{tag}cpu",
                f"server CPU per delivery, fan-out to {n:,}, bursts of {k}",
                "µs",
                "fanout",
                _fanout(n, "burst", "server_cpu_us_per_delivery"),
                False,
                "{:,.2f}",
            ),
            Metric(
                f"fan{tag}ls",
                f"fan-out to {n:,}, lock-step",
                "deliveries/s",
                "fanout",
                _fanout(n, "lockstep", "deliveries_per_s"),
                True,
            ),
            Metric(
                f"fan{tag}lscpu",
                f"server CPU per delivery, fan-out to {n:,}, lock-step",
                "µs",
                "fanout",
                _fanout(n, "lockstep", "server_cpu_us_per_delivery"),
                False,
                "{:,.2f}",
            ),
            Metric(
                f"fan{tag}rss",
                f"server peak RSS in bursts, fan-out to {n:,}",
                "MB",
                "fanout",
                _fanout(n, "burst", "peak_rss_mb"),
                False,
                "{:,.1f}",
            ),
            Metric(
                f"fan{tag}rssup",
                f"server RSS added by bursts, fan-out to {n:,}",
                "KiB",
                "fanout",
                _kib(_fanout(n, "burst", "peak_rss_growth_mb")),
                False,
            ),
        ]
    return out


def is_fanout_memory(metric: Metric) -> bool:
    """The fan-out's memory rows (plotted apart from its speed rows)."""
    return metric.scenario == "fanout" and "rss" in metric.key


def collect(results: list[dict], metric: Metric) -> dict[tuple[str, int], float]:
    """(server name, round) → value, for the runs that succeeded."""
    out = {}
    for r in results:
        if r.get("scenario") == metric.scenario and r.get("ok"):
            try:
                value = metric.get(r)
            except (KeyError, TypeError):
                value = None
            if value is not None:
                out[(r["server"], r["round"])] = value
    return out


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio_to(
    values: dict[tuple[str, int], float], server: str, ref: str
) -> list[float]:
    """Per-round ratios server/ref, over the rounds where both ran."""
    out = []
    for (name, rnd), v in values.items():
        if name == server and (ref, rnd) in values and values[(ref, rnd)]:
            out.append(v / values[(ref, rnd)])
    return out


def server_name(impl: str, loop: str) -> str:
    return impl if loop == "asyncio" else f"{impl}+uvloop"


def formatted(metric: Metric, v: float | None) -> str:
    return "—" if v is None else metric.fmt.format(v)
