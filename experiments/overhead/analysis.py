"""From the raw counts to bytes per message, the websocket.org scenario and the latency ratios."""

from __future__ import annotations

from experiments.overhead.common import (
    SESSION_S_FOR_AMORTISING,
    TCPIP_BYTES_PER_SEGMENT,
    key,
    pct,
)

POLL_KINDS = ("http_request", "http_response_head", "body_separators")
WS_KINDS = (
    "ws_frame_header",
    "ws_ping",
    "ws_pong",
    "upgrade_request",
    "upgrade_response",
)


def figures(g: dict) -> dict:
    """One kind of user's counts (``simulate.summarise``) per delivered message, with TCP/IP and latency."""
    b = g["bytes"]
    n = max(1, g["delivered"])
    tcpip = g["segments"] * TCPIP_BYTES_PER_SEGMENT
    app_total = sum(b.values())
    lat = g["latencies_ms"]
    requests = g["requests"]
    return {
        **{k: v for k, v in g.items() if k != "latencies_ms"},
        "per_message": {k: v / n for k, v in b.items()},
        "segments_per_message": g["segments"] / n,
        "segments_per_request": g["segments"] / requests if requests else None,
        "tcpip_per_message": tcpip / n,
        "app_overhead_per_message": (app_total - b.get("payload", 0)) / n,
        "wire_per_message": (app_total + tcpip) / n,
        "request_bytes_mean": b.get("http_request", 0) / requests if requests else None,
        "response_head_mean": b.get("http_response_head", 0) / requests
        if requests
        else None,
        "latency_ms": {f"p{p}": pct(lat, p) for p in (50, 90, 99)}
        | {"max": lat[-1] if lat else None, "n": len(lat)},
        "latencies_ms": lat,
    }


def analyse(raw: dict, params: dict) -> dict:
    groups = {key(g["method"], g["headers"]): figures(g) for g in raw["groups"]}

    # The websocket.org scenario: every client gets one message a second; a poller polls once a second and each
    # poll brings one message. Per client per second, from the bytes measured above.
    scenario = {}
    for hkind in ("chromium", "minimal"):
        sp = groups[key("short polling", hkind)]
        lp = groups[key("long polling", hkind)]
        ws = groups[key("WebSocket", hkind)]
        ws_b = ws["bytes"]
        frame = ws_b.get("ws_frame_header", 0) / max(1, ws["delivered"])
        pings = ws["pings"]
        ping_frame = (
            ws_b["ws_ping"] / pings if pings else 6.0
        )  # rawws pings with a 4-byte payload
        pong_frame = ws_b["ws_pong"] / pings if pings and ws_b.get("ws_pong") else 10.0
        keepalive_per_s = (ping_frame + pong_frame) / params["ping_interval"]
        upgrade = (
            ws_b.get("upgrade_request", 0) + ws_b.get("upgrade_response", 0)
        ) / ws["users"]
        ws_segments_per_msg = ws["segments_per_message"]
        rows = {
            "short polling": {
                "headers": sp["request_bytes_mean"] + sp["response_head_mean"],
                "tcpip": sp["segments_per_request"] * TCPIP_BYTES_PER_SEGMENT,
            },
            "long polling": {
                "headers": (
                    lp["bytes"].get("http_request", 0)
                    + lp["bytes"].get("http_response_head", 0)
                )
                / max(1, lp["delivered"]),
                "tcpip": lp["tcpip_per_message"],
            },
            "WebSocket, frame header only": {
                "headers": frame,
                "tcpip": ws["tcpip_per_message"],
            },
            "WebSocket + keepalive + upgrade over 1 h": {
                "headers": frame + keepalive_per_s + upgrade / SESSION_S_FOR_AMORTISING,
                "tcpip": ws["tcpip_per_message"],
            },
        }
        scenario[hkind] = {
            "rows": rows,
            "keepalive_bytes_per_s": keepalive_per_s,
            "upgrade_bytes": upgrade,
            "ws_segments_per_message": ws_segments_per_msg,
            "ratio_headers": rows["short polling"]["headers"] / frame
            if frame
            else None,
            "ratio_headers_with_keepalive": rows["short polling"]["headers"]
            / rows["WebSocket + keepalive + upgrade over 1 h"]["headers"],
            "ratio_wire": (
                rows["short polling"]["headers"] + rows["short polling"]["tcpip"]
            )
            / (
                rows["WebSocket + keepalive + upgrade over 1 h"]["headers"]
                + rows["WebSocket + keepalive + upgrade over 1 h"]["tcpip"]
            ),
            "ratio_longpoll_headers": rows["long polling"]["headers"] / frame
            if frame
            else None,
        }
    latency = {}
    for hkind in ("chromium", "minimal"):
        ws = groups[key("WebSocket", hkind)]["latency_ms"]
        for method in ("short polling", "long polling"):
            m = groups[key(method, hkind)]["latency_ms"]
            latency[key(method, hkind)] = {
                f"p{p}": (m[f"p{p}"] / ws[f"p{p}"])
                if m[f"p{p}"] and ws[f"p{p}"]
                else None
                for p in (50, 99)
            }
    return {"groups": groups, "scenario": scenario, "latency_ratio": latency}
