"""Plots for bench/PERF.md from the JSON the scenarios write into bench/perf/.

python -m bench.perf_plots  # reads bench/perf/*.json, writes bench/plots/perf_*.png
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
DATA, PLOTS = HERE / "perf", HERE / "plots"
COLOURS = {
    "rawws": "#1f77b4",
    "rawws shared": "#1f77b4",
    "rawws@base": "#aec7e8",
    "websockets": "#ff7f0e",
    "websockets+PyJWT": "#ff7f0e",
    "rawws dedicated": "#9467bd",
    "rawws off": "#2ca02c",
}


def _load(name: str) -> dict | None:
    path = DATA / name
    return json.loads(path.read_text()) if path.exists() else None


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


def compression(data: dict) -> None:
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
    fig.savefig(PLOTS / "perf_compression.png", dpi=110)


def handshakes(data: dict) -> None:
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
    fig.savefig(PLOTS / "perf_handshakes.png", dpi=110)


def storm(data: dict) -> None:
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
    fig.savefig(PLOTS / "perf_storm.png", dpi=110)


def latency(runs: list[dict]) -> None:
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
    fig.savefig(PLOTS / "perf_latency.png", dpi=110)


def main() -> int:
    PLOTS.mkdir(exist_ok=True)
    if (data := _load("compression.json")) is not None:
        compression(data)
    if (data := _load("handshakes.json")) is not None:
        handshakes(data)
    if (data := _load("storm.json")) is not None:
        storm(data)
    runs = [
        run
        for name in (
            "latency_sqlite.json",
            "latency_postgresql.json",
            "latency_sqlite_50.json",
        )
        if (run := _load(name)) is not None
    ]
    if runs:
        latency(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
