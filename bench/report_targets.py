"""RESULTS.md's table of the benchmark issue's Part 3 targets: each goal beside what the run reached.

Kept apart from ``report.py`` because the goals are data that changes with the
issue, not with how the report is laid out.
"""

from __future__ import annotations

from bench.metrics import Metric, collect, median, ratio_to, server_name
from bench.servers.registry import REFERENCE

# The optimisation targets of the benchmark issue (Part 3), rawws against websockets on the same loop:
# (metric key, loop, "ratio" to websockets or "value" of rawws, comparison, bound, what it says).
TARGETS = [
    ("echo64", "asyncio", "ratio", ">=", 2.5, "echo 64 B msg/s"),
    ("echo64", "uvloop", "ratio", ">=", 2.5, "echo 64 B msg/s"),
    ("echo16k", "asyncio", "ratio", ">=", 1.5, "echo 16 KiB MB/s"),
    ("echo16k", "uvloop", "ratio", ">=", 1.5, "echo 16 KiB MB/s"),
    ("fan1k", "asyncio", "ratio", ">=", 20.0, "fan-out to 1,000, burst, deliveries/s"),
    (
        "fan1klscpu",
        "asyncio",
        "value",
        "<=",
        6.0,
        "fan-out to 1,000, lock-step, server CPU µs per delivery",
    ),
    (
        "fan100lscpu",
        "asyncio",
        "value",
        "<=",
        6.0,
        "fan-out to 100, lock-step, server CPU µs per delivery",
    ),
    ("hs_seq", "asyncio", "ratio", ">=", 1.3, "handshakes/s, sequential"),
    ("hs_conc", "asyncio", "ratio", ">=", 1.3, "handshakes/s, concurrent"),
    (
        "mem2k",
        "asyncio",
        "value",
        "<=",
        7.0,
        "memory per idle connection at 2,000, KiB",
    ),
    (
        "mem10k",
        "asyncio",
        "value",
        "<=",
        7.0,
        "memory per idle connection at 10,000, KiB",
    ),
    ("rtt50", "uvloop", "ratio", "<=", 0.6, "round trip p50"),
]


# Issue 25's targets measured by this run: (metric key, rawws server, peer, bound on the ratio, what it says).
# The ratio is the median of the per-round ratios rawws ÷ peer, on the stdlib loop; lower is better for each.
ISSUE_25_TARGETS = [
    (
        "hs_cpu_seq",
        "rawws",
        "websockets",
        0.8,
        "3. server CPU per `/echo` handshake, sequential",
    ),
    (
        "hs_cpu_conc",
        "rawws",
        "websockets",
        0.8,
        "3. server CPU per `/echo` handshake, concurrent",
    ),
    (
        "fan1krss",
        "rawws-lib",
        "websockets",
        1.0,
        "4. peak RSS in bursts to 1,000, the library (`rawws.serve`, `rawws.broadcast`)",
    ),
    (
        "fan1krss",
        "rawws",
        "websockets",
        1.0,
        "4. peak RSS in bursts to 1,000, `rawws serve` (the whole product)",
    ),
    ("cpu64", "rawws", "aiohttp", 1.0, "5. server CPU per 64 B echo"),
]


def issue_25_table(
    results: list[dict], metrics: list[Metric], servers: list[str]
) -> list[str]:
    """Issue 25's targets this run measures, each with the ratio reached and its per-round range."""
    keys = {m.key: m for m in metrics}
    rows = []
    for key, server, peer, bound, what in ISSUE_25_TARGETS:
        if key not in keys or server not in servers or peer not in servers:
            continue
        found = ratio_to(collect(results, keys[key]), server, peer)
        if not found:
            continue
        m = median(found)
        rows.append(
            f"| {what} | ≤ {bound:g}× {peer} | {m:.2f}× [{min(found):.2f}–{max(found):.2f}] "
            f"| {'**met**' if m <= bound else 'missed'} |"
        )
    if not rows:
        return []
    return [
        "### Issue 25: the targets this run measures",
        "",
        "Medians of the per-round ratios rawws ÷ peer on the stdlib event loop, with their range. Items 1 and 2 "
        "(a room of 100,000, latency at steady rates) and the chat's authenticated handshake are the studies' "
        "blocks at the end of this page.",
        "",
        "| target | goal | reached [per-round range] | |",
        "|---|---|---:|---|",
        *rows,
        "",
    ]


def _rss_at(results: list[dict], server: str, connections: int) -> list[float]:
    """Total server RSS in MB with ``connections`` idle WebSockets open, per round."""
    out = []
    for r in results:
        if r.get("scenario") == "memory" and r.get("ok") and r.get("server") == server:
            out += [
                step["rss_kib"] / 1024
                for step in r.get("steps") or []
                if step.get("connections") == connections
            ]
    return out


def targets_table(
    results: list[dict], metrics: list[Metric], servers: list[str]
) -> list[str]:
    """Every Part 3 target with the figure this run reached (medians of per-round ratios or of values)."""
    keys = {m.key: m for m in metrics}
    rows = []
    for key, loop, kind, op, bound, what in TARGETS:
        server, ref = server_name("rawws", loop), server_name(REFERENCE, loop)
        if key not in keys or server not in servers:
            continue
        values = collect(results, keys[key])
        if kind == "ratio":
            if ref not in servers:
                continue
            found = ratio_to(values, server, ref)
            shown = f"{median(found):.2f}× websockets" if found else "—"
            goal = f"{op.replace('>=', '≥').replace('<=', '≤')} {bound:g}× websockets"
        else:
            found = [v for (name, _), v in values.items() if name == server]
            shown = f"{median(found):,.2f}" if found else "—"
            goal = f"{op.replace('>=', '≥').replace('<=', '≤')} {bound:g}"
        if not found:
            verdict = "not measured"
        else:
            m = median(found)
            verdict = (
                "**met**" if (m >= bound if op == ">=" else m <= bound) else "missed"
            )
        loop_note = "" if loop == "asyncio" else f" ({loop})"
        rows.append(f"| {what}{loop_note} | {goal} | {shown} | {verdict} |")
    rss = _rss_at(results, "rawws", 10000)
    if rss:
        m = median(rss)
        rows.append(
            f"| RSS with 10,000 idle connections | < 150 MB | {m:,.1f} MB | {'**met**' if m < 150 else 'missed'} |"
        )
    if not rows:
        return []
    return [
        "### Part 3: the targets, and what this run reached",
        "",
        "rawws on the stdlib event loop unless marked; ratios are medians of the per-round ratios to websockets "
        "on the same loop.",
        "",
        "| target | goal | reached | |",
        "|---|---|---:|---|",
        *rows,
        "",
    ]
