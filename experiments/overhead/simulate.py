"""One run of the study: every kind of user at once on the same feed, then the measurements per kind."""

from __future__ import annotations

import asyncio
import json
import random
import statistics

from experiments.overhead.common import HOST
from experiments.overhead.users import (
    Counter,
    Headers,
    _read_response,
    poll_user,
    websocket_user,
)


async def _get_json(port: int, target: str) -> dict:
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode())
    head, body = await _read_response(reader)
    writer.close()
    return json.loads(body)


async def simulate(
    port: int,
    *,
    users: int,
    duration: float,
    rate: float,
    interval: float,
    delay: float,
    seed: int,
) -> dict:
    """Every kind of user at once, ``users`` of each, on the same feed; returns the measurements."""
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    groups: list[tuple[str, str, list[Counter]]] = []
    tasks = []
    settle = 0.5 + 2 * delay
    start_at = loop.time() + settle
    # users keep going until every message had its chance: one poll interval and both delays after the last one
    end = start_at + duration + interval + 4 * delay + 0.5
    for hkind in ("chromium", "minimal"):
        headers = Headers(hkind, port)
        for method, path, every in (
            ("short polling", "/poll", interval),
            ("long polling", "/longpoll", None),
        ):
            group: list[Counter] = []
            groups.append((method, hkind, group))
            for _ in range(users):
                counter = Counter(method, hkind)
                group.append(counter)
                offset = rng.uniform(0, interval) if every else 0.0
                tasks.append(
                    loop.create_task(
                        poll_user(
                            counter,
                            headers,
                            path,
                            delay=delay,
                            interval=every,
                            offset=settle + offset,
                            end=end,
                        )
                    )
                )
        group = []
        groups.append(("WebSocket", hkind, group))
        for _ in range(users):
            counter = Counter("WebSocket", hkind)
            group.append(counter)
            tasks.append(
                loop.create_task(websocket_user(counter, headers, delay=delay, end=end))
            )
    await asyncio.sleep(max(0.0, start_at - loop.time()))
    await _get_json(port, f"/start?duration={duration}&rate={rate}&seed={seed}")
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    log = await _get_json(port, "/log")
    published = log["published_ns"]
    out: dict = {"published": len(published), "errors": errors, "groups": []}
    for method, hkind, counters in groups:
        out["groups"].append(summarise(method, hkind, counters, published, delay))
    return out


def summarise(
    method: str, hkind: str, counters: list[Counter], published: list[int], delay: float
) -> dict:
    """One kind of user's counts added up: bytes by kind, latencies (``published[i - 1]`` is message i's
    publish time, ns), and the messages late for most of them."""
    total: dict[str, int] = {}
    latencies: list[float] = []
    per_message: dict[int, list[float]] = {}
    delivered = duplicates = 0
    for c in counters:
        for k, v in c.bytes.items():
            total[k] = total.get(k, 0) + v
        for i, at in c.received.items():
            if 0 < i <= len(published):
                ms = (at - published[i - 1]) / 1e6
                latencies.append(ms)
                per_message.setdefault(i, []).append(ms)
        delivered += len(c.received)
        duplicates += c.duplicates
    latencies.sort()
    # messages that reached most users of this kind more than 2 one-way delays late: for WebSocket that is
    # not the protocol but a stall of the server or of the machine at the moment of publishing
    late = sorted(
        i for i, ms in per_message.items() if statistics.median(ms) > 2 * delay * 1000
    )
    return {
        "method": method,
        "headers": hkind,
        "users": len(counters),
        "bytes": total,
        "requests": sum(c.requests for c in counters),
        "empty_responses": sum(c.empty_responses for c in counters),
        "segments": sum(c.segments for c in counters),
        "pings": sum(c.pings for c in counters),
        "delivered": delivered,
        "missing": len(counters) * len(published) - delivered,
        "duplicates": duplicates,
        "late_messages": late,
        "latencies_ms": latencies,
    }
