"""PERF.md's plots, from the raw figures the scenarios write with ``--json``.

    python -m experiments.perf.plot [--data experiments/perf/data] [--plots experiments/perf/plots]

The raw figures are not committed: each scenario writes its own when run
with ``--json`` (``SOURCES`` below has the command behind each file, as PERF.md
ran it). A file that is missing skips its plot and says which command makes it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.report_plots import save_png

HERE = Path(__file__).resolve().parent
DATA, PLOTS = HERE / "data", HERE / "plots"
#: each raw file and the command that writes it (``--base-tree DIR`` adds rawws@base)
SOURCES = {
    "compression.json": "compression --rounds 3 --members 300 1000",
    "handshakes.json": "auth_handshake --rounds 5 --handshakes 3000",
    "storm.json": "storm --rounds 2",
    "latency_sqlite.json": "latency",
    "latency_postgresql.json": "latency --postgres",
    "latency_sqlite_50.json": "latency --rate 50 --senders 10 --duration 10",
}
COLOURS = {
    "rawws": "#1f77b4",
    "rawws shared": "#1f77b4",
    "rawws@base": "#aec7e8",
    "websockets": "#ff7f0e",
    "websockets+PyJWT": "#ff7f0e",
    "rawws dedicated": "#9467bd",
    "rawws off": "#2ca02c",
}


def _load(data: Path, name: str) -> dict | None:
    path = data / name
    if not path.exists():
        print(
            f"{path} missing, its plot skipped: python -m experiments.perf."
            f"{SOURCES[name]} --json {path}",
            file=sys.stderr,
        )
        return None
    return json.loads(path.read_text())


def _bars(ax, labels: list[str], values: list[float], unit: str) -> None:
    bars = ax.bar(
        labels, values, color=[COLOURS.get(label, "#7f7f7f") for label in labels]
    )
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(
            f"{value:.1f}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
        )
    ax.set_ylabel(unit)
    ax.tick_params(axis="x", labelrotation=15)


def compression(data: dict, plots: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    memory = data.get("memory", {})
    names = list(memory)
    _bars(
        axes[0],
        names,
        [statistics.median(memory[n]) for n in names],
        "KiB per idle compressed connection",
    )
    axes[0].set_title(
        f"Idle compressed connections ({data['connections']} each, median of {data['rounds']})"
    )
    ratio = data.get("ratio", [])
    _bars(
        axes[1],
        [r["mode"].replace(", ", "\n", 1) for r in ratio],
        [r["bytes_per_message"] for r in ratio],
        "bytes on the wire per chat message",
    )
    axes[1].set_title("Chat JSON, 1,000 messages")
    fanout = data.get("fanout", {})
    for name, sizes in fanout.items():
        xs = sorted(int(size) for size in sizes)
        axes[2].plot(
            xs, [statistics.median(sizes[str(x)]) for x in xs], marker="o", label=name
        )
    axes[2].set_xlabel("members in the room")
    axes[2].set_ylabel("server CPU µs per delivery")
    axes[2].set_title("Chat fan-out, 200 messages (median)")
    axes[2].set_ylim(bottom=0)
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, plots / "perf_compression.png")


def handshakes(data: dict, plots: Path) -> None:
    results = data["handshakes"]
    fig, axes = plt.subplots(
        1, len(results), figsize=(6 * len(results), 4.5), squeeze=False
    )
    for ax, (scenario, by_name) in zip(axes[0], results.items(), strict=True):
        names = list(by_name)
        _bars(
            ax,
            names,
            [statistics.median(r["cpu_us"] for r in by_name[n]) for n in names],
            "server CPU µs per handshake (median)",
        )
        ax.set_title(
            {
                "echo": "/echo: connect + upgrade + close",
                "auth": "chat: token → 101 → welcome → close",
            }.get(scenario, scenario)
        )
    fig.tight_layout()
    save_png(fig, plots / "perf_handshakes.png")


def storm(data: dict, plots: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    names = list(data)
    values = [
        statistics.median(f["all_caught_up_s"] or float("nan") for f in data[n])
        for n in names
    ]
    _bars(ax, names, values, "seconds from the drop until every client is caught up")
    ax.axhline(5.0, color="#d62728", linestyle="--", linewidth=1)
    clients = data[names[0]][0]["clients"]
    ax.set_title(f"Reconnect storm: {clients:,} clients dropped at once")
    fig.tight_layout()
    save_png(fig, plots / "perf_storm.png")


def latency(runs: list[dict], plots: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in runs:
        quantiles = run.get("quantiles_ms") or []
        if quantiles:
            ax.plot(
                quantiles,
                [q / 200 for q in range(len(quantiles))],
                label=f"{run['store']}: {run['members']:,} members, {run.get('rate', '?')} msg/s, "
                f"{run['messages']:,} messages",
            )
    ax.set_xscale("log")
    ax.set_xlabel("say → delivered, ms (log)")
    ax.set_ylabel("fraction of deliveries")
    ax.set_title("Delivery latency (every delivery)")
    ax.axvline(50.0, color="#d62728", linestyle="--", linewidth=1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, plots / "perf_latency.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.perf.plot",
        description=(__doc__ or "").split("\n")[0],
    )
    parser.add_argument("--data", type=Path, default=DATA, help="the --json files")
    parser.add_argument("--plots", type=Path, default=PLOTS, help="where PNGs go")
    args = parser.parse_args(argv)
    args.plots.mkdir(parents=True, exist_ok=True)
    if (data := _load(args.data, "compression.json")) is not None:
        compression(data, args.plots)
    if (data := _load(args.data, "handshakes.json")) is not None:
        handshakes(data, args.plots)
    if (data := _load(args.data, "storm.json")) is not None:
        storm(data, args.plots)
    runs = [
        run
        for name in (
            "latency_sqlite.json",
            "latency_postgresql.json",
            "latency_sqlite_50.json",
        )
        if (run := _load(args.data, name)) is not None
    ]
    if runs:
        latency(runs, args.plots)
    return 0


if __name__ == "__main__":
    sys.exit(main())
