"""Turn the harness's raw results into bench/RESULTS.md and PNG plots (the plots in bench/report_plots.py)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

from bench.blocks import blocks
from bench.metrics import (
    Metric,
    collect,
    formatted,
    median,
    metrics_for,
    ratio_to,
    server_name,
)
from bench.report_fanout import fanout_measured, fanout_plots
from bench.report_plots import bar_plot, ratio_heatmap
from bench.report_targets import issue_25_table, targets_table
from bench.servers.registry import IMPLS, LOOPS, REFERENCE

PACKAGES = (
    "rawws",
    "h11",
    "wsproto",
    "websockets",
    "picows",
    "aiofastnet",
    "aiohttp",
    "uvloop",
    "matplotlib",
)


def machine_info() -> dict:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "rawws_commit": _git_state(),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_impl": platform.python_implementation(),
        "packages": versions,
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def _git_state() -> str:
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "rawws"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" with uncommitted changes in rawws/" if dirty.strip() else "")


def tables(
    results: list[dict], metrics: list[Metric], servers: list[str], rounds: int
) -> list[str]:
    lines: list[str] = []
    for loop in LOOPS:
        names = [server_name(i, loop) for i in IMPLS if server_name(i, loop) in servers]
        if not names:
            continue
        ref = server_name(REFERENCE, loop)
        lines += [
            f"### {loop}: medians over {rounds} round(s), and the median of the per-round ratios to `{ref}`",
            "",
            "Cells: median [min–max over rounds] (median of per-round ratio to "
            + ref
            + "). "
            "For rows marked ↑ higher is better, ↓ lower is better.",
            "",
            "| figure | " + " | ".join(f"`{n}`" for n in names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        for m in metrics:
            values = collect(results, m)
            cells = []
            for n in names:
                vs = [v for (s, _), v in values.items() if s == n]
                if not vs:
                    cells.append("—")
                    continue
                cell = formatted(m, median(vs))
                if len(vs) > 1:
                    cell += f" [{formatted(m, min(vs))}–{formatted(m, max(vs))}]"
                ratios = ratio_to(values, n, ref)
                if ratios and n != ref:
                    cell += f" ({median(ratios):.2f}×)"
                cells.append(cell)
            arrow = "↑" if m.higher_is_better else "↓"
            lines.append(f"| {m.label}, {m.unit} {arrow} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def rawws_vs_peers(
    results: list[dict], metrics: list[Metric], servers: list[str]
) -> list[str]:
    lines = [
        "### rawws relative to each peer (median of per-round ratios rawws ÷ peer, same event loop)",
        "",
        "Above 1 means rawws has more of the figure: better for ↑ rows, worse for ↓ rows.",
        "",
    ]
    peers = [i for i in IMPLS if i != "rawws"]
    header = (
        "| figure | "
        + " | ".join(f"÷ {p} ({loop})" for loop in LOOPS for p in peers)
        + " |"
    )
    lines += [header, "|---|" + "---:|" * (len(peers) * len(LOOPS))]
    for m in metrics:
        values = collect(results, m)
        cells = []
        for loop in LOOPS:
            me = server_name("rawws", loop)
            for p in peers:
                ratios = ratio_to(values, me, server_name(p, loop))
                cells.append(
                    f"{median(ratios):.2f}" if ratios and me in servers else "—"
                )
        arrow = "↑" if m.higher_is_better else "↓"
        lines.append(f"| {m.label} {arrow} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def flags(results: list[dict]) -> list[str]:
    out = []
    for r in results:
        where = f"round {r.get('round')} `{r.get('server')}` {r.get('scenario')}"
        if not r.get("ok"):
            receivers = f" to {r['receivers']:,}" if r.get("receivers") else ""
            logged = [
                line
                for line in (r.get("server_log_tail") or "").splitlines()
                if line.strip()
            ]
            said = f" (server log: `{logged[-1].strip()[:200]}`)" if logged else ""
            out.append(f"- **FAILED** {where}{receivers}: {r.get('error')}{said}")
            continue
        if r.get("scenario") in ("echo64", "echo16k"):
            if r.get("client_cpu_util", 0) > 0.9:
                out.append(
                    f"- {where}: the load client used {r['client_cpu_util']:.0%} of a core — client-bound, the server may be faster than shown"
                )
        if r.get("scenario") == "fanout" and "burst" in r:
            busy = [
                (phase, r[phase]["client_cpu_util"])
                for phase in ("burst", "lockstep")
                if r[phase]["client_cpu_util"] > 0.9
            ]
            if busy:
                which = ", ".join(
                    f"{'lock-step' if phase == 'lockstep' else phase} {util:.0%}"
                    for phase, util in busy
                )
                out.append(
                    f"- {where} to {r['receivers']:,}: the load client used {which} of a core — client-bound, "
                    "deliveries/s may understate the server"
                )
    return out


def contention(results: list[dict]) -> list[str]:
    """How much of the machine the benchmark actually had, from the echo runs' CPU accounting."""
    echo = [
        r
        for r in results
        if r.get("ok")
        and r.get("scenario") in ("echo64", "echo16k")
        and "other_cpu_cores" in r
    ]
    if not echo:
        return []
    others = sorted(r["other_cpu_cores"] for r in echo)
    server = sorted(r["server_cpu_util"] for r in echo)
    client = sorted(r["client_cpu_util"] for r in echo)
    starved = sum(1 for r in echo if r["server_cpu_util"] < 0.6)
    return [
        f"- **Machine contention, measured.** During the {len(echo)} timed echo phases, everything other than the "
        f"server and the load client used a median {median(others):.2f} cores (range {others[0]:.2f}–{others[-1]:.2f}) "
        f"of the {os.cpu_count()} (`/proc/stat` busy time minus both processes' own CPU time: other processes, and "
        "kernel network work done in softirq context that neither process is charged for). The server got a median "
        f"{median(server):.0%} of a core (range {server[0]:.0%}–{server[-1]:.0%}; under 60% in {starved} of {len(echo)} "
        f"phases) and the client {median(client):.0%}. Where the server is well under 100% while the client is not "
        "saturated either, the server was waiting for a CPU, and msg/s and MB/s understate it; CPU time per "
        "message does not depend on that, which is why it is reported beside every throughput figure.",
    ]


def write_report(out: Path, plots_dir: Path, meta: dict, results: list[dict]) -> None:
    plots_dir.mkdir(parents=True, exist_ok=True)
    params = meta["params"]
    metrics = metrics_for(params)
    by_key = {m.key: m for m in metrics}
    servers = meta["servers"]
    # runs from before the fan-out had a server process of its own say nothing of it
    fanout_alone = "fanout" in meta.get("own_process", ())
    rel = os.path.relpath(plots_dir, out.parent)
    plots = [
        ("throughput.png", "echo throughput", ["echo64", "echo16k"]),
        ("cpu.png", "server CPU time per message", ["cpu64", "cpu16k"]),
        ("latency.png", "round trip, one message in flight", ["rtt50", "rtt99"]),
        ("handshakes.png", "connect + upgrade + close", ["hs_seq", "hs_conc"]),
        (
            "memory.png",
            "memory per idle connection",
            [m.key for m in metrics if m.key.startswith("mem")],
        ),
    ]
    for name, title, keys in plots:
        bar_plot(plots_dir / name, results, [by_key[k] for k in keys], title)
    plots += fanout_plots(plots_dir, results, metrics)
    ratio_heatmap(plots_dir / "ratios.png", results, metrics, servers)

    pk = meta["packages"]
    lines = [
        "# rawws benchmarks",
        "",
        "Generated by `bench/harness.py`; do not edit by hand (re-run instead).",
        "",
        f"- **Command:** `{meta['command']}` (profile `{meta['profile']}`, {meta['rounds']} round(s))",
        f"- **Date:** {meta['started']} → {meta['finished']} (UTC)",
        f"- **Machine:** {meta['nproc']} CPUs ({meta['cpu_model']}), Linux {meta['kernel']}, "
        f"{meta['python_impl']} {meta['python']}; load average at start {' / '.join(meta['loadavg_start'])} "
        "(the machine is shared: other processes ran during the benchmark, see *Reading the numbers*)",
        f"- **rawws:** commit {meta.get('rawws_commit', 'unknown')}",
        "- **Packages:** " + ", ".join(f"{k} {v}" for k, v in pk.items()),
        f"- **Counts:** `{params}`",
        "",
        "## What was measured",
        "",
        "Every server runs as its own process on 127.0.0.1 with compression off; one load client "
        "(`bench/client/`, raw sockets and epoll, no asyncio) drives it from another process. Servers "
        "are interleaved round by round (round *r* starts with the *r*-th server) and each round starts "
        + (
            "every server fresh, twice: one process runs the other scenarios, then, once it has stopped, a "
            "second fresh process of the same server runs the fan-out. "
            if fanout_alone
            else "every server fresh, as one process that runs every scenario. "
        )
        + "Client frames are binary, pre-masked and built once; every reply is compared "
        "byte for byte with the expected echo, and before each timed phase a validation pass sends whole "
        "windows and checks content and count.",
        "",
        f"- **echo 64 B**: {params['echo64_connections']} connections, each with a sliding window of "
        f"{params['echo64_window']} messages in flight (a reply releases the next message), "
        f"{params['warmup_s']} s warm-up, then {params['duration_s']} s timed (or {params['echo64_max_messages']:,} replies). "
        "msg/s counts replies received in the timed phase.",
        f"- **echo 16 KiB**: the same with {params['echo16k_connections']} connections × {params['echo16k_window']} in flight; "
        "MB/s is echoed payload (10⁶ bytes) per second, one direction.",
        "- **server CPU per message**: utime+stime of the server process (`/proc/<pid>/stat`, all threads, "
        "1/100 s resolution) over the timed phase ÷ messages.",
        f"- **round trip**: one connection, one 64 B message in flight, {params['rtt_count']:,} timed after "
        f"{params['rtt_warmup']} warm-up; nearest-rank percentiles.",
        f"- **handshakes/s**: TCP connect + upgrade request + 101 (checked: `Sec-WebSocket-Accept`, no extension) + "
        "close frame 1000 + the server's close frame + the server's FIN. Sequential: "
        f"{params['hs_sequential']} one after another; concurrent: {params['hs_concurrent']:,} with "
        f"{params['hs_concurrency']} in progress; server CPU per handshake is utime+stime of the server over each phase ÷ "
        "handshakes. For the floor: TCP connect + FIN exchange only.",
        f"- **memory per idle connection**: on the freshly started server, 50 connections are opened and closed "
        "(first-use allocations), the server's `VmRSS` is read once it is idle (baseline), then connections are opened "
        f"up to {', '.join(f'{n:,}' for n in params['memory_steps'])} and left idle; (RSS − baseline) ÷ N, KiB. "
        "RSS counts the process's memory only — kernel socket buffers are not in it. Measured in the first "
        f"{min(params.get('memory_rounds', meta['rounds']), meta['rounds'])} round(s) only: it varies by less than 1% "
        "between rounds, and opening 10,000 connections per server is the slowest part of the run.",
        fanout_measured(params, own_process=fanout_alone),
        "",
        "## Results",
        "",
    ]
    lines += tables(results, metrics, servers, meta["rounds"])
    if any(s.startswith("rawws") for s in servers):
        lines += rawws_vs_peers(results, metrics, servers)
    lines += targets_table(results, metrics, servers)
    lines += issue_25_table(results, metrics, servers)
    lines += [
        "### Plots",
        "",
        f"![ratios to websockets]({rel}/ratios.png)",
        "",
    ]
    for name, title, _ in plots:
        lines += [f"![{title}]({rel}/{name})", ""]
    lines += ["## Reading the numbers", ""]
    lines += [
        "- The machine has 2 cores; the load client and the server each need most of one, so a benchmark "
        "here is a duel for two cores, and any other process on the machine (the machine is shared) takes "
        "from one of them. Medians of interleaved rounds damp that; the server-CPU-per-message figures "
        "depend least on it and are the most comparable numbers here.",
    ]
    lines += contention(results)
    lines += [
        "- picows is frame-level: its echo handler sends each frame back without reassembling messages or "
        "validating UTF-8 (the load is binary, so no server validates UTF-8 here). rawws, websockets and aiohttp "
        "hand whole messages to application code.",
        "- picows uses `aiofastnet` for its transport when it is installed (it is, here), instead of the loop's "
        "own transport; that is its default configuration.",
        "- The floor parses its own length prefix and does no HTTP, masking or framing: the gap between a "
        "server and the floor is what that server's WebSocket layer costs on the same event loop.",
        "- Fan-out: in a burst, a server that queues a receiver's frames and writes them together (rawws, one write per "
        "receiver per event-loop turn; the floor, one write per receiver per read) makes one system call per receiver "
        "per burst, where one that writes every frame as it is sent (websockets' `broadcast`, picows, aiohttp) makes one "
        "per frame — that is most of the burst gap. Lock-step has one message per cycle, so every server writes once per "
        "receiver per message; there the load client reads N sockets per message and often needs as much CPU as the "
        "server, so lock-step deliveries/s says as much about the client as about the server: compare CPU per delivery.",
        "",
    ]
    flagged = flags(results)
    if flagged:
        lines += ["### Flagged runs", ""] + flagged + [""]
    limits = Path(__file__).resolve().parent / "LIMITS.md"  # by hand, from PROFILE.md
    if limits.exists():
        lines += ["", limits.read_text().rstrip()]
    lines += further_studies(out.parent)
    # the blocks the studies wrote into the page this one replaces (bench/blocks.py)
    kept = blocks(out.read_text()) if out.exists() else []
    out.write_text("\n".join(lines) + "\n" + "".join("\n" + block for block in kept))


REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"

#: The one-off studies in experiments/ (each with its command and findings in its write-up),
#: linked from the report with the plots it shows: (write-up, what it is about, plots).
FURTHER_STUDIES = [
    (
        "overhead/OVERHEAD.md",
        "one feed by short polling, long polling and WebSocket push: bytes on the wire "
        "and latency, against websocket.org's claims; and, on the product, one chat feed "
        "over `/ws`, `/sse` and `/poll` (section *On the product*)",
        ["overhead_ratios.png", "product_bytes.png"],
    ),
    (
        "overhead/SESSIONS.md",
        "what an SSE session and a waiting long poll cost the server beside a WebSocket: "
        "idle memory, CPU per delivery to 1,000 members",
        [],
    ),
    (
        "perf/PERF.md",
        "compressed connections, handshakes (plain and authenticated), reconnect storm, delivery latency",
        [
            "perf_compression.png",
            "perf_handshakes.png",
            "perf_storm.png",
            "perf_latency.png",
        ],
    ),
    (
        "cluster/CLUSTER.md",
        "several nodes through the Redis bus, and --workers",
        ["cluster.png"],
    ),
    (
        "metrics/METRICS.md",
        "what the Prometheus counters cost on echo and fan-out",
        [],
    ),
    ("fanout/FANOUT.md", "the chat's own fan-out, burst and lock-step", []),
    (
        "profile/PROFILE.md",
        "where rawws spends its time under the echo load (py-spy); what limits us, above, is read from it",
        [],
    ),
]


def further_studies(folder: Path) -> list[str]:
    """Links to the studies in experiments/, relative to the report in ``folder``, with their plots.

    A report written outside this checkout (``--out /tmp/…``) links none: from
    there the relative paths would lead nowhere.
    """
    if not folder.resolve().is_relative_to(REPO):
        return []
    present = [
        (Path(name), what, plots)
        for name, what, plots in FURTHER_STUDIES
        if (EXPERIMENTS / name).exists()
    ]
    if not present:
        return []
    rel = os.path.relpath(EXPERIMENTS, folder)
    lines = ["", "# Further studies", ""]
    for name, what, _plots in present:
        lines.append(f"- [{name.name}]({rel}/{name}): {what}.")
    for name, _, plots in present:
        for plot in plots:
            if (EXPERIMENTS / name.parent / "plots" / plot).exists():
                lines += [
                    "",
                    f"![{name.name}: {plot}]({rel}/{name.parent}/plots/{plot})",
                ]
    return lines
