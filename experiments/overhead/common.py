"""The study's constants (the claims it checks, as published) and the small helpers every part uses."""

from __future__ import annotations

import math
from pathlib import Path

STUDY_DIR = Path(__file__).resolve().parent
REPO = STUDY_DIR.parents[1]
CAPTURE_DIR = STUDY_DIR / "captured"  # capture_chromium.py writes it; not committed
HOST = "127.0.0.1"
TCPIP_BYTES_PER_SEGMENT = 52  # IPv4 20 + TCP 20 + timestamps option 12
LONGPOLL_TIMEOUT_S = 25.0

# The claims, as published (websocket.org, "HTML5 Web Sockets: A Quantum Leap in Scalability for the Web",
# Lubbers & Greco, Kaazing): 871 bytes of request+response headers per poll vs a 2-byte frame header,
# "500:1 or even 1000:1 reduction in unnecessary HTTP header traffic", "3:1 reduction in latency"
# (Hickson, quoted there: "reducing latency from 150ms to 50ms").
CLAIM_POLL_HEADER_BYTES = 871
CLAIM_FRAME_BYTES = 2
CLAIM_HEADER_RATIOS = (500, 1000)
CLAIM_LATENCY_RATIO = 3.0
SCALES = (1, 1_000, 100_000)
SESSION_S_FOR_AMORTISING = (
    3600.0  # the one-time upgrade, spread over a one-hour connection
)


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    rank = max(1, min(len(values), math.ceil(p * len(values) / 100)))
    return values[rank - 1]


def key(method: str, headers: str) -> str:
    return f"{method} / {headers}"
