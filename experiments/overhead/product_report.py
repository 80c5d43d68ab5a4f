"""The product study's figures, its section of OVERHEAD.md and its two plots (on the overhead study's code)."""

from __future__ import annotations

import os
from pathlib import Path

from experiments.overhead.analysis import figures
from experiments.overhead.common import (
    CLAIM_FRAME_BYTES,
    CLAIM_POLL_HEADER_BYTES,
    TCPIP_BYTES_PER_SEGMENT,
)
from experiments.overhead.markdown import _r
from experiments.overhead.plots import latency_cdf, stacked_bars

ORDER = ("WebSocket", "SSE", "long polling", "short polling")
KINDS = [
    ("payload", "payload (the message event's JSON)", "#55a868"),
    ("http_request", "HTTP request head", "#c44e52"),
    ("http_response_head", "HTTP response head", "#dd8452"),
    ("framing", "framing (WS header / SSE lines + chunks / poll envelope)", "#4c72b0"),
    ("keepalive", "keepalive (ping + pong / heartbeat)", "#8172b3"),
    ("other_events", "other events", "#937860"),
    ("tcpip", "TCP/IP (52 B × segments)", "#999999"),
]
COLORS = {
    "WebSocket": "#4c72b0",
    "SSE": "#55a868",
    "long polling": "#dd8452",
    "short polling": "#c44e52",
}


def analyse(raw: dict, params: dict) -> dict:
    groups = {}
    for g in raw["groups"]:
        f = figures(g)
        f["overhead_per_message"] = f["app_overhead_per_message"]
        f["wire_overhead_per_message"] = (
            f["app_overhead_per_message"] + f["tcpip_per_message"]
        )
        f["setup_per_session"] = g["setup_bytes"] / max(1, g["users"])
        f["setup_segments_per_session"] = g["setup_segments"] / max(1, g["users"])
        groups[g["method"]] = f
    ws = groups["WebSocket"]
    ratios = {}
    for name, g in groups.items():
        ratios[name] = {
            "overhead": _div(g["overhead_per_message"], ws["overhead_per_message"]),
            "wire_overhead": _div(
                g["wire_overhead_per_message"], ws["wire_overhead_per_message"]
            ),
            **{
                f"latency_p{q}": _div(
                    g["latency_ms"][f"p{q}"], ws["latency_ms"][f"p{q}"]
                )
                for q in (50, 90, 99)
            },
        }
    sp = groups["short polling"]
    headers_per_poll = (sp["request_bytes_mean"] or 0) + (sp["response_head_mean"] or 0)
    ws_frame = ws["per_message"].get("framing", 0)
    return {
        "groups": groups,
        "ratios": ratios,
        "headers_per_poll": headers_per_poll,
        "ws_frame_per_message": ws_frame,
        "ratio_headers": _div(headers_per_poll, ws_frame),
        "payload_mean": ws["per_message"].get("payload", 0),
    }


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def render_section(study: dict, out: Path, plots_dir: Path) -> list[str]:
    rel = os.path.relpath(plots_dir, out.parent)
    p, a, raw = study["params"], study["analysis"], study["raw"]
    groups, ratios = a["groups"], a["ratios"]
    lines = [
        "## On the product: `/ws`, `/sse` and `/poll` of `rawws serve`",
        "",
        f"Command: `{study['command']}` — {study['date']}. A real `rawws serve` (SQLite in a fresh data dir, "
        "the load-friendly limits of `experiments/perfkit.py`, its default keepalive: WebSocket ping every 20 s, "
        "SSE heartbeat every 15 s). One publisher (a WebSocket) says chat lines of 20–200 characters into one "
        f"room at Poisson times, {p['rate']:g}/s on average, for {p['duration']:g} s ({raw['published']} lines; "
        f"the `message` event's JSON averaged {a['payload_mean']:.0f} bytes). {p['users']} readers of each "
        "transport at once, one session and one keep-alive connection each: WebSocket `/ws`; SSE `GET /sse`; "
        f"long polling `GET /poll?session=…&ack=…&wait={25:g}`; short polling `GET /poll?…&wait=0` every "
        f"{p['interval']:g} s. Requests are a script's (request line, `Host`, `Authorization: Bearer` with a "
        f"{raw['token_bytes']}-byte token; a browser adds its own headers, see the Chromium rows above). "
        f"Simulated one-way delay {p['delay_ms']:g} ms each way, as above; latency = the publisher's write → "
        f"the reader's read + the delay. TCP/IP: `TCP_INFO` segments × {TCPIP_BYTES_PER_SEGMENT} bytes, the "
        "session's setup apart. Code: `experiments/overhead/product.py`, `product_users.py`, `product_report.py`.",
        "",
    ]
    if raw["errors"]:
        lines += ["**Errors:** " + "; ".join(raw["errors"][:5]), ""]
    lines += [
        "| transport | delivered | requests | HTTP request | HTTP response head | framing | keepalive "
        "| other events | TCP/IP (segments) | overhead w/o TCP/IP | overhead with TCP/IP | p50 ms | p90 ms | p99 ms "
        "| late lines |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ORDER:
        g = groups[name]
        per, lat = g["per_message"], g["latency_ms"]
        missing = f" ({g['missing']} missing)" if g["missing"] else ""
        lines.append(
            f"| {name} | {g['delivered']:,}{missing} | {g['requests']:,} | {per.get('http_request', 0):.1f} | "
            f"{per.get('http_response_head', 0):.1f} | {per.get('framing', 0):.1f} | {per.get('keepalive', 0):.2f} | "
            f"{per.get('other_events', 0):.1f} | {g['tcpip_per_message']:.1f} ({g['segments_per_message']:.2f}) | "
            f"{g['overhead_per_message']:.1f} | {g['wire_overhead_per_message']:.1f} | "
            f"{_ms(lat['p50'])} | {_ms(lat['p90'])} | {_ms(lat['p99'])} | {len(g['late_messages'])} |"
        )
    lines += [
        "",
        "Bytes per delivered message, both directions, without the payload (the same JSON on every "
        "transport). *Framing*: WebSocket's frame header; SSE's `data: ` and `id:` lines, blank lines and HTTP "
        "chunk sizes; a poll answer's JSON envelope around its events. Opening a session and joining the room "
        f"is not in these rows. *Late lines*: lines that reached most readers of the row more than 2 × "
        f"{p['delay_ms']:g} ms after they were said. Setup:",
        "",
        "| transport | setup bytes per session | setup segments per session |",
        "|---|---:|---:|",
    ]
    for name in ORDER:
        g = groups[name]
        lines.append(
            f"| {name} | {g['setup_per_session']:,.0f} | {g['setup_segments_per_session']:.1f} |"
        )
    lines += [
        "",
        "| ratio to WebSocket | claimed | SSE | long polling | short polling |",
        "|---|---:|---:|---:|---:|",
        f"| HTTP headers per poll ÷ WS frame header | {CLAIM_POLL_HEADER_BYTES / CLAIM_FRAME_BYTES:.0f}:1; "
        f"“500:1 or even 1000:1” | — | — | {_r(a['ratio_headers'])} "
        f"({a['headers_per_poll']:.0f} ÷ {a['ws_frame_per_message']:.2f}) |",
        "| overhead per message, without TCP/IP | — | "
        + " | ".join(_r(ratios[n]["overhead"]) for n in ORDER[1:])
        + " |",
        "| overhead per message, with TCP/IP | — | "
        + " | ".join(_r(ratios[n]["wire_overhead"]) for n in ORDER[1:])
        + " |",
        "| latency p50 | 3:1 (150 ms vs 50 ms) | "
        + " | ".join(_r(ratios[n]["latency_p50"]) for n in ORDER[1:])
        + " |",
        "| latency p90 | 3:1 | "
        + " | ".join(_r(ratios[n]["latency_p90"]) for n in ORDER[1:])
        + " |",
        "| latency p99 | 3:1 | "
        + " | ".join(_r(ratios[n]["latency_p99"]) for n in ORDER[1:])
        + " |",
        "",
        f"![bytes per message on the product]({rel}/product_bytes.png)",
        "",
        f"![latency on the product]({rel}/product_latency.png)",
        "",
        *reading(study),
    ]
    return lines


def reading(study: dict) -> list[str]:
    """What the table says, in the run's own figures."""
    p, a, raw = study["params"], study["analysis"], study["raw"]
    g, r = a["groups"], a["ratios"]
    ws, sse, lp, sp = (g[n] for n in ORDER)
    d = p["delay_ms"]
    published = raw["published"]
    return [
        f"**SSE costs what WebSocket costs, but its framing.** Each event is `data: ` + the JSON + an `id:` line "
        "with the session's position (`room:id`) + a blank line, in one HTTP chunk (its size line and CRLFs): "
        f"{sse['per_message'].get('framing', 0):.1f} bytes a message against WebSocket's "
        f"{ws['per_message'].get('framing', 0):.2f}-byte frame header ({_r(r['SSE']['overhead'])}). Both are one "
        f"server write per message, so TCP/IP is alike ({sse['segments_per_message']:.2f} and "
        f"{ws['segments_per_message']:.2f} segments a message), and with it the ratio is "
        f"{_r(r['SSE']['wire_overhead'])}. Latency: p50 {_ms(sse['latency_ms']['p50'])} ms against "
        f"{_ms(ws['latency_ms']['p50'])}, p90 {_ms(sse['latency_ms']['p90'])} against {_ms(ws['latency_ms']['p90'])}.",
        "",
        f"**Polls pay a request per answer.** A poll's request head averaged {lp['request_bytes_mean'] or 0:.0f} bytes, "
        f"{raw['token_bytes'] + 24} of them the `Authorization: Bearer` line (the session id alone does not "
        "authenticate a poll), and its answer head "
        f"{lp['response_head_mean'] or 0:.0f} bytes, plus the JSON envelope (session, cursor, position). Long "
        f"polling made {lp['requests'] / max(1, lp['delivered']):.2f} requests per message delivered, short polling "
        f"{sp['requests'] / max(1, sp['delivered']):.2f} ({sp['empty_responses']} of its {sp['requests']} answers "
        f"empty). All bytes but the payload, TCP/IP included: long polling {_r(r['long polling']['wire_overhead'])}, "
        f"short polling {_r(r['short polling']['wire_overhead'])} of WebSocket; websocket.org's 500:1 counts HTTP headers against a frame header only.",
        "",
        f"**Latency.** WebSocket: p50 {_ms(ws['latency_ms']['p50'])} ms, p90 {_ms(ws['latency_ms']['p90'])}, "
        f"p99 {_ms(ws['latency_ms']['p99'])}. {_late(ws, published)} for most WebSocket readers and "
        f"{_late(sse, published)} for most SSE readers: such a line is late on every transport at once, so "
        "it is the server or the machine (shared, 2 cores) stalling when it was said, not a transport; with "
        f"{published} lines, one of them is {1 / max(1, published):.1%} of the deliveries, enough to set a p99. "
        f"Long polling: p50 {_ms(lp['latency_ms']['p50'])} ms, p90 {_ms(lp['latency_ms']['p90'])}, p99 "
        f"{_ms(lp['latency_ms']['p99'])}; {_late(lp, published)}. Most lines find a poll waiting and go out at once; "
        f"a line said while an answer and the next poll are on their way (2 × {d:g} ms, about "
        f"{min(1.0, 2 * d / 1000 * p['rate']):.0%} of the lines at {p['rate']:g}/s) waits for that poll, 3 × {d:g} ms "
        f"in all: websocket.org's 150 ms against 50, at long polling's tail ({_r(r['long polling']['latency_p90'])} "
        f"at p90) and not at its median ({_r(r['long polling']['latency_p50'])}). Short polling: p50 "
        f"{_ms(sp['latency_ms']['p50'])} ms, p99 {_ms(sp['latency_ms']['p99'])} ms, set by its {p['interval']:g} s interval.",
        "",
        "**Not covered:** as above (loopback, no TLS, HTTP/1.1), and browsers' own headers: a page's "
        "`EventSource` sends its cookies and the headers of the Chromium capture once per stream, but a poll "
        "sends them with every request.",
    ]


def _late(g: dict, published: int) -> str:
    late = g["late_messages"]
    if not late:
        return f"no line of {published} was late"
    shown = ", ".join(map(str, late[:6])) + (", …" if len(late) > 6 else "")
    return f"{len(late)} of {published} lines were late (#{shown})"


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f}"


def plots(study: dict, plots_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.report_plots import save_png

    groups = study["analysis"]["groups"]
    p = study["params"]
    rows = []
    for name in ORDER:
        per = dict(groups[name]["per_message"])
        per["tcpip"] = groups[name]["tcpip_per_message"]
        rows.append((name, per))
    fig, ax = plt.subplots(figsize=(10, 4.8))
    stacked_bars(ax, rows, KINDS)
    ax.set_xlabel(
        "bytes on the wire per delivered message (both directions), rawws serve"
    )
    ax.set_title(
        f"chat feed {p['rate']:g} msg/s, short poll every {p['interval']:g} s, "
        f"{study['raw']['published']} messages × {p['users']} readers per row",
        fontsize=9,
    )
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(
        handles,
        labels,
        fontsize=7,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=3,
    )
    fig.tight_layout()
    save_png(fig, plots_dir / "product_bytes.png")

    fig, ax = plt.subplots(figsize=(8, 4.4))
    latency_cdf(
        ax,
        [(name, groups[name]["latencies_ms"], "-", COLORS[name]) for name in ORDER],
        p["delay_ms"],
    )
    ax.set_title(
        f"rawws serve: publish → receive, simulated one-way delay {p['delay_ms']:g} ms",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, plots_dir / "product_latency.png")


def render_summary(study: dict, overhead_page: str) -> list[str]:
    """The block for bench/RESULTS.md: the product's figures beside websocket.org's two claims."""
    p, a = study["params"], study["analysis"]
    groups, ratios = a["groups"], a["ratios"]
    lines = [
        "## Transports on the product: bytes and latency beside websocket.org's claims",
        "",
        f"From the overhead study's section *On the product* ([OVERHEAD.md]({overhead_page})), "
        f"{study['date']}: one chat feed ({p['rate']:g} lines/s, {a['payload_mean']:.0f}-byte message events) "
        f"read by {p['users']} readers of each transport of one `rawws serve`, script headers with a bearer "
        f"token, short polling every {p['interval']:g} s, a simulated one-way delay of {p['delay_ms']:g} ms.",
        "",
        "| transport | overhead per message, B (with TCP/IP) | ÷ WebSocket (with TCP/IP) | p50 / p90 / p99 ms "
        "| latency ÷ WebSocket, p50 / p90 / p99 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ORDER:
        g, r = groups[name], ratios[name]
        lat = g["latency_ms"]
        lines.append(
            f"| {name} | {g['overhead_per_message']:.1f} ({g['wire_overhead_per_message']:.1f}) | "
            f"{_r(r['overhead'])} ({_r(r['wire_overhead'])}) | {_ms(lat['p50'])} / {_ms(lat['p90'])} / "
            f"{_ms(lat['p99'])} | {_r(r['latency_p50'])} / {_r(r['latency_p90'])} / {_r(r['latency_p99'])} |"
        )
    lines += [
        "",
        f"- **500:1 (headers).** A short poll's HTTP heads here are {a['headers_per_poll']:.0f} bytes against "
        f"{a['ws_frame_per_message']:.2f} bytes of WebSocket frame header per message: "
        f"{_r(a['ratio_headers'])}, against the claimed 871 ÷ 2 = 436:1 (“500:1 or even 1000:1”). "
        "Counting every byte but the payload, TCP/IP included, short polling is "
        f"{_r(ratios['short polling']['wire_overhead'])} of WebSocket, long polling "
        f"{_r(ratios['long polling']['wire_overhead'])} and SSE {_r(ratios['SSE']['wire_overhead'])}.",
        f"- **3:1 (latency).** Long polling ÷ WebSocket: {_r(ratios['long polling']['latency_p50'])} at p50, "
        f"{_r(ratios['long polling']['latency_p90'])} at p90, {_r(ratios['long polling']['latency_p99'])} at p99 "
        "(a line said between an answer and the next poll waits for that poll; stalls of the shared machine, "
        "late on every transport at once, weigh on the p99s: see the section); SSE ÷ WebSocket: "
        f"{_r(ratios['SSE']['latency_p50'])} / {_r(ratios['SSE']['latency_p90'])} / {_r(ratios['SSE']['latency_p99'])}.",
    ]
    return lines
