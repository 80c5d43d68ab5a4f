"""The study's three plots: bytes per message by kind, latency distributions, ratios found vs claimed."""

from __future__ import annotations

from pathlib import Path

from experiments.overhead.common import (
    CLAIM_FRAME_BYTES,
    CLAIM_HEADER_RATIOS,
    CLAIM_LATENCY_RATIO,
    CLAIM_POLL_HEADER_BYTES,
    key,
)


def stacked_bars(
    ax, rows: list[tuple[str, dict[str, float]]], kinds: list[tuple[str, str, str]]
) -> None:
    """One horizontal bar per row, stacked by kind (``kinds``: key, label, colour), its total written beside it."""
    for row, (_, per) in enumerate(rows):
        left = 0.0
        for k, label, color in kinds:
            v = per.get(k, 0.0)
            ax.barh(row, v, left=left, color=color, label=label if row == 0 else None)
            left += v
        ax.text(left + 5, row, f"{left:,.0f} B", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([name for name, _ in rows], fontsize=8)
    ax.invert_yaxis()


def latency_cdf(
    ax, series: list[tuple[str, list[float], str, str]], delay_ms: float
) -> None:
    """Sorted latencies as distribution curves (label, values, line style, colour); 1× and 3× the delay marked."""
    for label, lat, style, color in series:
        if lat:
            ax.plot(
                lat,
                [(i + 1) / len(lat) for i in range(len(lat))],
                style,
                color=color,
                label=label,
            )
    for mult in (1, 3):
        ax.axvline(delay_ms * mult, color="#888888", lw=0.8, ls="--")
        ax.text(
            delay_ms * mult,
            0.02,
            f" {mult}×{delay_ms:g} ms",
            fontsize=7,
            color="#555555",
        )
    ax.set_xscale("log")
    ax.set_xlabel("publish → receive, ms (log)")
    ax.set_ylabel("fraction of deliveries")
    ax.grid(alpha=0.3)


def plots(study: dict, plots_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.report_plots import save_png

    a = study["analysis"]
    groups = a["groups"]
    order = [
        (m, h)
        for h in ("chromium", "minimal")
        for m in ("short polling", "long polling", "WebSocket")
    ]
    kinds = [
        ("payload", "payload", "#55a868"),
        ("http_request", "HTTP request head", "#c44e52"),
        ("http_response_head", "HTTP response head", "#dd8452"),
        ("body_separators", "body separators", "#937860"),
        ("ws_frame_header", "WS frame headers", "#4c72b0"),
        ("keepalive", "ping + pong", "#8172b3"),
        ("upgrade", "upgrade (amortised over this run)", "#64b5cd"),
        ("tcpip", "TCP/IP (52 B × segments)", "#999999"),
    ]
    fig, ax = plt.subplots(figsize=(10, 4.6))
    rows = []
    for k in order:
        g = groups[key(*k)]
        per = dict(g["per_message"])
        per["keepalive"] = per.get("ws_ping", 0) + per.get("ws_pong", 0)
        per["upgrade"] = per.get("upgrade_request", 0) + per.get("upgrade_response", 0)
        per["tcpip"] = g["tcpip_per_message"]
        rows.append((f"{k[0]} ({k[1]})", per))
    stacked_bars(ax, rows, kinds)
    ax.set_xlabel("bytes on the wire per delivered message (both directions)")
    ax.set_title(
        f"{study['params']['rate']:g} msg/s feed, poll every {study['params']['interval']:g} s, "
        f"{study['raw']['published']} messages × {study['params']['users']} users per row",
        fontsize=9,
    )
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, labels, fontsize=7, loc="lower right")
    fig.tight_layout()
    save_png(fig, plots_dir / "overhead_bytes.png")

    fig, ax = plt.subplots(figsize=(8, 4.4))
    styles = {"chromium": "-", "minimal": ":"}
    colors = {
        "short polling": "#c44e52",
        "long polling": "#dd8452",
        "WebSocket": "#4c72b0",
    }
    latency_cdf(
        ax,
        [
            (f"{m} ({h})", groups[key(m, h)]["latencies_ms"], styles[h], colors[m])
            for m, h in order
        ],
        study["params"]["delay_ms"],
    )
    d = study["params"]["delay_ms"]
    ax.set_title(
        f"latency with a simulated one-way delay of {d:g} ms (claim: 150 ms → 50 ms)",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, plots_dir / "overhead_latency.png")

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    sc = a["scenario"]
    names = ["claimed\n871 ÷ 2", "claimed\n500:1", "claimed\n1000:1"]
    vals = [CLAIM_POLL_HEADER_BYTES / CLAIM_FRAME_BYTES, *CLAIM_HEADER_RATIOS]
    cols = ["#999999"] * 3
    for h in ("chromium", "minimal"):
        names += [f"{h}\nheaders ÷ 2 B", f"{h}\n+ keepalive", f"{h}\n+ TCP/IP"]
        vals += [
            sc[h]["ratio_headers"] or 0,
            sc[h]["ratio_headers_with_keepalive"],
            sc[h]["ratio_wire"],
        ]
        cols += ["#4c72b0", "#8172b3", "#55a868"]
    ax1.bar(range(len(vals)), vals, color=cols)
    for i, v in enumerate(vals):
        ax1.text(
            i,
            v,
            f"{v:,.0f}:1" if v >= 10 else f"{v:.1f}:1",
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax1.set_yscale("log")
    ax1.set_xticks(range(len(vals)))
    ax1.set_xticklabels(names, fontsize=6.5)
    ax1.set_title(
        "polling : WebSocket bytes per message (1 msg/s, 1 poll/s)", fontsize=9
    )
    lr = a["latency_ratio"]
    names2 = ["claimed"]
    vals2 = [CLAIM_LATENCY_RATIO]
    cols2 = ["#999999"]
    for m in ("long polling", "short polling"):
        for p in (50, 99):
            v = lr[key(m, "chromium")][f"p{p}"]
            names2.append(f"{m}\np{p}")
            vals2.append(v or 0)
            cols2.append("#dd8452" if m == "long polling" else "#c44e52")
    ax2.bar(range(len(vals2)), vals2, color=cols2)
    for i, v in enumerate(vals2):
        ax2.text(i, v, f"{v:.1f}:1", ha="center", va="bottom", fontsize=7)
    ax2.set_xticks(range(len(vals2)))
    ax2.set_xticklabels(names2, fontsize=7)
    ax2.set_title("latency polling : WebSocket (Chromium headers)", fontsize=9)
    fig.tight_layout()
    save_png(fig, plots_dir / "overhead_ratios.png")
