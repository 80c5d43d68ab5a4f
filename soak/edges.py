"""Two edges of the second hardening round, under the soak's load: metric labels and readiness.

* Close-code flood: ``CLOSE_CODE_CONNECTIONS`` signed-in connections to ``/ws``
  close with codes a client picks (3000–4999, all valid on the wire). The
  metrics listener's ``rawws_websocket_closes_total`` must then have at most
  one series per ``CloseCode`` plus ``other``: a client cannot mint label values.
* Readiness watch: the metrics listener's ``/readyz``, polled for the whole
  run, must answer 503 while PostgreSQL is away (it used to answer 200,
  checking nothing), and be 200 again once the outage is over; the server's
  log must say each outage once when it starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rawws.core.closecodes import CloseCode
from soak.attacks import upgrade_head
from testkit import masked_frame

CLOSE_CODE_CONNECTIONS = 2000
CLOSE_CODE_CONCURRENCY = 4  # under the per-user WebSocket limit (20), beside the load
READINESS_POLL_S = 0.2
READY_AGAIN_WITHIN_S = (
    30.0  # after the load: the outage's end needs a quiet spell and a probe
)


@dataclass
class CloseCodeFlood:
    closed: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    series: int = 0  # of rawws_websocket_closes_total after the flood
    labels: set[str] = field(default_factory=set)


@dataclass
class ReadinessWatch:
    polls: int = 0
    not_ready: int = 0  # 503 answers
    unreachable: int = 0  # restarts: nothing listening
    ready_at_end: bool = False


async def _get(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n".encode()
        )
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def _close_with(port: int, token: str, code: int) -> str:
    """``ok``, or what went wrong (the status line of a refused upgrade, or the error's class)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        return type(exc).__name__
    try:
        writer.write(upgrade_head(port, token))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        if not head.startswith(b"HTTP/1.1 101"):
            return head.split(b"\r\n", 1)[0].decode("latin-1")
        writer.write(masked_frame(0x8, struct.pack("!H", code)))
        # the welcome, the answer to the close, then EOF
        await asyncio.wait_for(reader.read(), 10)
        return "ok"
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        return type(exc).__name__
    finally:
        writer.close()


async def close_code_flood(port: int, metrics_port: int, token: str) -> CloseCodeFlood:
    """Close ``CLOSE_CODE_CONNECTIONS`` connections with random codes; the series the metric then has."""
    result = CloseCodeFlood()
    rng = random.Random(14)
    gate = asyncio.Semaphore(CLOSE_CODE_CONCURRENCY)

    async def one() -> None:
        async with gate:
            outcome = await _close_with(port, token, rng.randrange(3000, 5000))
            if outcome == "ok":
                result.closed += 1
            else:
                result.failed[outcome] += 1

    await asyncio.gather(*(one() for _ in range(CLOSE_CODE_CONNECTIONS)))
    _, body = await _get(metrics_port, "/metrics")
    for line in body.decode().splitlines():
        if line.startswith("rawws_websocket_closes_total{"):
            result.labels.add(line.split('code="', 1)[1].split('"', 1)[0])
    result.series = len(result.labels)
    return result


async def watch_readiness(metrics_port: int, stop: asyncio.Event) -> ReadinessWatch:
    """Poll the metrics listener's ``/readyz`` until ``stop``, then until it is ready (bounded)."""
    result = ReadinessWatch()
    give_up: float | None = None
    while True:
        if stop.is_set() and give_up is None:
            give_up = time.monotonic() + READY_AGAIN_WITHIN_S
        status = 0
        with contextlib.suppress(OSError, TimeoutError, IndexError, ValueError):
            status, _ = await _get(metrics_port, "/readyz")
        result.polls += 1
        result.not_ready += status == 503
        result.unreachable += status == 0
        if give_up is not None and (status == 200 or time.monotonic() > give_up):
            result.ready_at_end = status == 200
            return result
        await asyncio.sleep(READINESS_POLL_S)


def report_edges(
    figures: dict[str, object],
    failures: list[str],
    flood: CloseCodeFlood,
    watch: ReadinessWatch,
    log: Path,
    outages: int,
) -> None:
    """The family's figures and what must hold."""
    bound = len(CloseCode) + 1
    figures["close_code_connections"] = f"{flood.closed}/{CLOSE_CODE_CONNECTIONS}"
    figures["close_code_series"] = f"{flood.series} (at most {bound})"
    figures["readyz_503_answers"] = f"{watch.not_ready} of {watch.polls} polls"
    figures["ready_at_end"] = watch.ready_at_end
    text = log.read_text(errors="replace")
    starts, ends = (
        text.count("store unavailable ("),
        text.count("store available again"),
    )
    figures["store_outage_log_lines"] = f"{starts} start, {ends} end"
    if flood.closed < CLOSE_CODE_CONNECTIONS // 2:
        failures.append(
            f"only {flood.closed} close-code connections completed: "
            f"{flood.failed.most_common(3)}"
        )
    if flood.series > bound:
        failures.append(f"rawws_websocket_closes_total has {flood.series} series")
    if not watch.ready_at_end:
        failures.append("/readyz was not 200 again at the end")
    if outages and watch.not_ready == 0:
        failures.append("/readyz never said 503 during the database outage")
    if (starts, ends) != (outages, outages):
        failures.append(f"outage log lines: {starts} start, {ends} end for {outages}")
