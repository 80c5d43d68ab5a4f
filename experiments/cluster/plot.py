"""The plot of experiments/cluster/CLUSTER.md: server CPU per delivery and latency, one node against three and workers.

    python -m experiments.cluster.plot [--input experiments/cluster/CLUSTER.md] [--output experiments/cluster/plots/cluster.png]

It reads the table ``python -m experiments.cluster`` wrote, so the plot always shows the figures of that run
and nothing is measured twice.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLUMNS = (
    "setup",
    "messages",
    "deliveries",
    "deliveries/s",
    "cpu_us",
    "p50_ms",
    "p99_ms",
)


def read_table(markdown: str) -> list[dict[str, str]]:
    """The rows of the first table whose header starts with ``| setup |``."""
    rows: list[dict[str, str]] = []
    in_table = False
    for line in markdown.splitlines():
        if line.startswith("| setup |"):
            in_table = True
            continue
        if in_table:
            if not line.startswith("|"):
                break
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if set(cells[0]) <= {"-", ":"}:
                continue
            rows.append(dict(zip(COLUMNS, cells, strict=True)))
    return rows


def plot(rows: list[dict[str, str]], output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.report_plots import save_png

    names = [row["setup"] for row in rows]
    fig, (cpu, latency) = plt.subplots(1, 2, figsize=(10, 3.6))
    cpu.bar(names, [float(row["cpu_us"]) for row in rows], color="#4c72b0")
    cpu.set_title("server CPU per delivery (µs)")
    width = 0.38
    positions = range(len(rows))
    latency.bar(
        [p - width / 2 for p in positions],
        [float(row["p50_ms"]) for row in rows],
        width,
        label="p50",
    )
    latency.bar(
        [p + width / 2 for p in positions],
        [float(row["p99_ms"]) for row in rows],
        width,
        label="p99",
    )
    latency.set_xticks(list(positions), names)
    latency.set_title("say → delivered at a probe (ms)")
    latency.legend()
    fig.suptitle(
        "Fan-out to 1,000 receivers: one node, three nodes on the Redis bus, --workers"
    )
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    save_png(fig, output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=HERE / "CLUSTER.md")
    parser.add_argument("--output", type=Path, default=HERE / "plots" / "cluster.png")
    args = parser.parse_args(argv)
    rows = read_table(args.input.read_text())
    if not rows:
        parser.error(f"no '| setup |' table in {args.input}")
    plot(rows, args.output)
    print(f"wrote {args.output} from {len(rows)} rows of {args.input}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
