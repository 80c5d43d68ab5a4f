"""Prometheus metrics at ``/metrics`` on a listener of its own (``--metrics-port``), never the public one.

The hot path counts into plain ints (``rawws.core.counters``); this module
turns them into metric families at scrape time, through a custom collector on
a registry of the server's own (so two servers in one process never mix).
The scrape is answered on the event loop by a second rawws ``Server`` bound to
``--metrics-host`` (127.0.0.1 unless told): no thread reads the counters
while the loop writes them.

Event-loop lag is sampled here too: a timer asks to run every
``LAG_INTERVAL_S``; how late it runs is the lag, observed in a histogram.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.process_collector import ProcessCollector

from rawws.core.closecodes import close_code_label
from rawws.core.counters import Histogram
from rawws.core.http import Request, Response, Router, json_response
from rawws.errors import SettingError
from rawws.server.server import Server

log = logging.getLogger("rawws.server")

LAG_INTERVAL_S = 0.5  # how often the loop's lateness is sampled
#: The text format every Prometheus version reads (what ``generate_latest`` writes for our names)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _histogram(
    name: str, documentation: str, histogram: Histogram
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation)
    family.add_metric([], histogram.cumulative(), histogram.total)
    return family


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _by(
    name: str, documentation: str, label: str, values: dict[int, int] | dict[str, int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(values.items(), key=lambda item: str(item[0])):
        family.add_metric([str(key)], value)
    return family


def _by_label(values: dict[int, int], label: Callable[[int], str]) -> dict[str, int]:
    """Counts summed by label, so label values come from a known set, never from what a client sent."""
    summed: dict[str, int] = {}
    for key, value in values.items():
        name = label(key)
        summed[name] = summed.get(name, 0) + value
    return summed


#: The labels of ``rawws_hook_calls``: hook kinds and outcomes (``rawws.accounts.hook_wire``'s, which the
#: server may not import: the library imports no app), any other value counted as ``other``.
HOOK_KINDS = ("connect", "join", "say", "disconnect")
HOOK_OUTCOMES = ("allow", "deny", "failed", "delivered")


def _hook_calls(calls: dict[tuple[str, str], int]) -> CounterMetricFamily:
    family = CounterMetricFamily(
        "rawws_hook_calls",
        "Calls to the application's hooks, by hook and outcome (allow, deny, failed; an after-hook: delivered, failed)",
        labels=["hook", "outcome"],
    )
    summed: dict[tuple[str, str], int] = {}
    for (kind, outcome), value in calls.items():
        key = (
            kind if kind in HOOK_KINDS else "other",
            outcome if outcome in HOOK_OUTCOMES else "other",
        )
        summed[key] = summed.get(key, 0) + value
    for key, value in sorted(summed.items()):
        family.add_metric(list(key), value)
    return family


class RawwsCollector:
    """Reads one server's counters when Prometheus scrapes (``prometheus_client``'s collector protocol)."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: the families depend on what has happened

    def collect(self) -> Iterator[Metric]:
        server = self.server
        counters = server.counters
        open_by_path = GaugeMetricFamily(
            "rawws_websocket_connections",
            "WebSocket connections open now, by endpoint",
            labels=["endpoint"],
        )
        counts = dict.fromkeys(server.endpoints, 0)
        for connection in server.connections:
            # Labels from known values only: a path the default endpoint took is counted as "*".
            path = connection.path if connection.path in server.endpoints else "*"
            counts[path] = counts.get(path, 0) + 1
        for path, count in sorted(counts.items()):
            open_by_path.add_metric([path], count)
        yield open_by_path
        yield _counter(
            "rawws_http_requests",
            "HTTP requests read (upgrades included)",
            counters.http_requests,
        )
        yield _by(
            "rawws_handshakes",
            "WebSocket upgrade requests by the HTTP status answered",
            "status",
            counters.handshakes,
        )
        yield _by(
            "rawws_websocket_closes",
            "WebSocket connections ended, by close code (codes rawws does not name: other)",
            "code",
            _by_label(counters.close_codes, close_code_label),
        )
        yield _counter(
            "rawws_messages_timed_out",
            "WebSocket messages not whole within the message timeout (closed with 1008)",
            counters.messages_timed_out,
        )
        yield _counter(
            "rawws_messages_received",
            "WebSocket data messages received",
            counters.messages_received,
        )
        yield _counter(
            "rawws_messages_sent",
            "WebSocket data messages queued to peers",
            counters.messages_sent,
        )
        yield _counter(
            "rawws_received_bytes",
            "WebSocket bytes read off the wire",
            counters.bytes_received,
        )
        yield _counter(
            "rawws_sent_bytes",
            "WebSocket bytes written to the wire",
            counters.bytes_sent,
        )
        yield _counter(
            "rawws_fanout_deliveries",
            "Chat messages offered to a room member",
            counters.fanout_deliveries,
        )
        yield _counter(
            "rawws_slow_consumer_closes",
            "Connections closed (1008) for not reading fast enough",
            counters.slow_consumers_closed,
        )
        yield _counter(
            "rawws_catchups",
            "Joins with `since` that replayed missed messages",
            counters.catchups,
        )
        yield _counter(
            "rawws_catchup_messages",
            "Messages sent by `since` replays",
            counters.catchup_messages,
        )
        yield _counter(
            "rawws_account_stop_closes",
            "Connections closed (1008) because their account was stopped",
            counters.account_stop_closes,
        )
        yield _by(
            "rawws_login_attempts",
            "POST /auth/login by outcome",
            "outcome",
            counters.logins,
        )
        yield _histogram(
            "rawws_store_commit_seconds",
            "Time to store one group commit",
            counters.store_commit_seconds,
        )
        yield _histogram(
            "rawws_store_commit_batch_messages",
            "Messages per group commit",
            counters.store_batch_messages,
        )
        yield _counter(
            "rawws_store_commit_failures",
            "Group commits that failed",
            counters.store_commit_failures,
        )
        yield _histogram(
            "rawws_event_loop_lag_seconds",
            "How late a timer ran on the event loop",
            counters.loop_lag_seconds,
        )
        if counters.hook_calls:
            yield _hook_calls(counters.hook_calls)
        bus = counters.bus
        connected = (
            bus.connected_probe() if bus.connected_probe is not None else bus.connected
        )
        yield GaugeMetricFamily(
            "rawws_bus_connected",
            "1 while the bus between nodes is connected (0 without a bus)",
            value=int(connected),
        )
        yield _counter(
            "rawws_bus_published_messages",
            "Messages published to the bus",
            bus.published,
        )
        yield _counter(
            "rawws_bus_received_messages",
            "Messages received from the bus",
            bus.received,
        )
        if bus.refused_probe is not None:
            yield _by(
                "rawws_bus_refused_events",
                "Bus events refused unread: forged (not sealed with this cluster's key) or stale (replayed, too old)",
                "reason",
                bus.refused_probe(),
            )
        yield _counter(
            "rawws_bus_gap_repaired_messages",
            "Messages read from the store to fill bus gaps",
            bus.gaps_repaired,
        )


class LoopLagMonitor:
    """Samples how late the event loop runs a timer; the lateness goes into the loop-lag histogram."""

    def __init__(
        self, histogram: Histogram, interval_s: float = LAG_INTERVAL_S
    ) -> None:
        self.histogram = histogram
        self.interval_s = interval_s
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._due = loop.time() + self.interval_s
        self._handle = loop.call_at(self._due, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        self.histogram.observe(max(0.0, now - self._due))
        self._due = now + self.interval_s
        self._handle = loop.call_at(self._due, self._tick, loop)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class MetricsListener:
    """``GET /metrics`` on its own host and port, in the text exposition format; the node's ``/healthz`` and ``/readyz`` too."""

    def __init__(self, server: Server, host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(RawwsCollector(server))
        ProcessCollector(
            registry=self.registry
        )  # process_cpu_seconds_total, process_resident_memory_bytes, …
        self.server = server
        router = Router()
        router.add("GET", "/metrics", self._metrics)
        # The node's health, not this listener's: the same checks (store, bus) and
        # drain flag as the public port's /readyz, so a probe here cannot see "ready"
        # while the public one says 503.
        router.add("GET", "/readyz", server.readiness.handle)
        router.add("GET", "/healthz", self._healthz)
        config = dataclasses.replace(
            server.config, host=host, port=port, tls_cert=None, tls_key=None
        )
        self.listener = Server(config, router, health_routes=False)
        self.lag = LoopLagMonitor(server.counters.loop_lag_seconds)
        self._serving = False

    async def listen(self) -> None:
        """Bind its port (not serving yet): done first at start, so a taken one is said before anything is made."""
        try:
            await self.listener.listen()
        except (
            SettingError
        ) as exc:  # said of --host or --port: it is --metrics-host or --metrics-port
            raise SettingError(
                f"metrics_{exc.setting}", exc.value, exc.reason
            ) from None

    async def start(self) -> None:
        await self.listen()
        await self.listener.start()
        self.lag.start()
        self._serving = True
        log.info(
            "metrics on http://%s:%d/metrics", self.listener.config.host, self.port
        )

    @property
    def port(self) -> int:
        return self.listener.port

    async def close(self) -> None:
        self.lag.stop()
        if not self._serving:  # a start that failed after ``listen``
            self.listener.stop_listening()
            return
        await self.listener.shutdown()

    async def _healthz(self, request: Request) -> Response:
        return json_response(
            200, {"status": "ok", "websockets": len(self.server.connections)}
        )

    async def _metrics(self, request: Request) -> Response:
        return Response(
            200, [("Content-Type", CONTENT_TYPE)], generate_latest(self.registry)
        )
