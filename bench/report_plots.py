"""The report's plots (matplotlib, Agg backend): bars per metric with the rounds' spread, the ratio heat map."""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from PIL import Image

from bench.metrics import Metric, collect, median, ratio_to, server_name
from bench.servers.registry import ALL_SERVERS, IMPLS, LOOPS, REFERENCE

COLORS = {"asyncio": "#4c72b0", "uvloop": "#dd8452"}


def save_png(fig: plt.Figure, path: Path) -> None:
    """Write ``fig`` as a PNG of 256 colours, then close it.

    The plots are committed beside the write-ups that show them; a palette
    PNG of a chart looks the same and is about 40% of the bytes of matplotlib's
    RGBA one (no dithering: flat colours stay flat). Every plot of bench/ and
    experiments/ is saved through here, at the same 110 dpi.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    buffer.seek(0)
    with Image.open(buffer) as image:
        palette = image.convert("RGB").quantize(
            256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
    palette.save(path, optimize=True)


def bar_plot(
    path: Path,
    results: list[dict],
    metrics: list[Metric],
    title: str,
    *,
    cols: int | None = None,
    log: frozenset[str] = frozenset(),
) -> None:
    """One panel per metric, ``cols`` panels a row (default: all in one row); metrics named in ``log`` on a log scale."""
    cols = cols or len(metrics)
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(5.2 * cols, 4.0 * rows), squeeze=False
    )
    for ax in axes.flat[len(metrics) :]:
        ax.set_visible(False)
    for ax, m in zip(
        axes.flat, metrics, strict=False
    ):  # the grid may have more cells than metrics (hidden above)
        values = collect(results, m)
        width = 0.38
        for j, loop in enumerate(LOOPS):
            xs, ys, lo, hi = [], [], [], []
            for i, impl in enumerate(IMPLS):
                vs = [v for (s, _), v in values.items() if s == server_name(impl, loop)]
                if not vs:
                    continue
                med = median(vs)
                xs.append(i + (j - 0.5) * width)
                ys.append(med)
                lo.append(med - min(vs))
                hi.append(max(vs) - med)
            if xs:
                ax.bar(
                    xs,
                    ys,
                    width,
                    yerr=[lo, hi],
                    capsize=3,
                    label=loop,
                    color=COLORS[loop],
                )
        ax.set_xticks(range(len(IMPLS)))
        ax.set_xticklabels(IMPLS, rotation=20)
        scale = ", log scale" if m.key in log else ""
        if m.key in log and values:
            ax.set_yscale(
                "log"
            )  # bars start at the decade below the smallest value, so heights compare as ratios
            ax.set_ylim(bottom=10 ** math.floor(math.log10(min(values.values()) / 2)))
        ax.set_title(
            f"{m.label}\n{m.unit} ({'higher' if m.higher_is_better else 'lower'} is better{scale})",
            fontsize=9,
        )
        ax.grid(axis="y", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title + " — bars: median over rounds, whiskers: min–max", fontsize=10)
    fig.tight_layout()
    save_png(fig, path)


def ratio_heatmap(
    path: Path, results: list[dict], metrics: list[Metric], servers: list[str]
) -> None:
    rows = [s.name for s in ALL_SERVERS if s.name in servers]
    data = []
    labels = []
    for name in rows:
        loop = "uvloop" if name.endswith("+uvloop") else "asyncio"
        ref = server_name(REFERENCE, loop)
        row, lab = [], []
        for m in metrics:
            ratios = ratio_to(collect(results, m), name, ref)
            r = median(ratios) if ratios else None
            if r is None or r <= 0:
                row.append(float("nan"))
                lab.append("—")
            else:
                good = math.log2(r) if m.higher_is_better else -math.log2(r)
                row.append(good)
                lab.append(f"{r:.2f}")
        data.append(row)
        labels.append(lab)
    fig, ax = plt.subplots(figsize=(1.15 * len(metrics) + 2.5, 0.45 * len(rows) + 1.8))
    ax.imshow(data, cmap="RdYlGn", vmin=-2, vmax=2, aspect="auto")
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels(
        [f"{m.key} {'↑' if m.higher_is_better else '↓'}" for m in metrics],
        rotation=30,
        ha="right",
        fontsize=8,
    )
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=8)
    for i, lab in enumerate(labels):
        for j, text in enumerate(lab):
            ax.text(j, i, text, ha="center", va="center", fontsize=7)
    ax.set_title(
        "median per-round ratio to websockets on the same loop (green: better than websockets)",
        fontsize=9,
    )
    fig.tight_layout()
    save_png(fig, path)
