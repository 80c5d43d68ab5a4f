"""What the service counts, as plain integers: the hot path adds to an attribute, a scrape reads them all.

A Prometheus client's ``Counter.inc()`` takes a lock and walks a label lookup
per call; a message costs a few microseconds end to end, so that would show.
Here a message adds to an int attribute of one slotted object (tens of
nanoseconds) and the exporter (``rawws.server.metrics``) turns the totals into
metric families only when it is scraped. Nothing here does I/O or knows of
Prometheus, so every layer may count into it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence

#: Seconds: a store commit, a loop lag sample (Prometheus' default buckets, cut at 10 s)
LATENCY_BUCKETS_S = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
#: Messages per group commit (the writer caps a batch at 256)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Histogram:
    """Counts of observations per upper bound, their sum and number (a Prometheus histogram's raw data)."""

    __slots__ = ("bounds", "counts", "total", "count")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs as the exposition format writes them, ``+Inf`` last."""
        pairs: list[tuple[str, int]] = []
        running = 0
        for bound, count in zip(
            (*map(str, self.bounds), "+Inf"), self.counts, strict=True
        ):
            running += count
            pairs.append((bound, running))
        return pairs


class BusCounters:
    """What a message bus between nodes reports; the bus calls these, the exporter reads them."""

    __slots__ = (
        "configured",
        "connected",
        "connected_probe",
        "refused_probe",
        "published",
        "received",
        "gaps_repaired",
    )

    def __init__(self) -> None:
        self.configured = False
        self.connected = False
        #: Asked at scrape time when set (a bus that knows its own state), instead of ``connected``.
        self.connected_probe: Callable[[], bool] | None = None
        #: Asked at scrape time when set: events the bus refused, by reason (forged, stale).
        self.refused_probe: Callable[[], dict[str, int]] | None = None
        self.published = 0
        self.received = 0
        self.gaps_repaired = 0

    def set_connected(self, connected: bool) -> None:
        self.configured = True
        self.connected = connected

    def on_publish(self, count: int = 1) -> None:
        self.published += count

    def on_receive(self, count: int = 1) -> None:
        self.received += count

    def on_gap_repaired(self, messages: int = 1) -> None:
        """Messages fetched from the store because the bus missed them."""
        self.gaps_repaired += messages


class Counters:
    """Every total of one server process. Attributes are added to in place; dicts are keyed by outcome."""

    __slots__ = (
        "http_requests",
        "websockets_opened",
        "slow_consumers_closed",
        "messages_timed_out",
        "handshakes",
        "close_codes",
        "messages_received",
        "messages_sent",
        "bytes_received",
        "bytes_sent",
        "fanout_deliveries",
        "catchups",
        "catchup_messages",
        "account_stop_closes",
        "logins",
        "store_commit_seconds",
        "store_batch_messages",
        "store_commit_failures",
        "loop_lag_seconds",
        "bus",
        "hook_calls",
    )

    def __init__(self) -> None:
        self.http_requests = 0
        self.websockets_opened = 0
        self.slow_consumers_closed = 0
        #: Connections closed (1008) for a message not whole within ``message_timeout_s``.
        self.messages_timed_out = 0
        self.handshakes: dict[
            int, int
        ] = {}  # HTTP status of the upgrade answer → count (101 = opened)
        self.close_codes: dict[
            int, int
        ] = {}  # WebSocket close code → connections that ended with it
        self.messages_received = 0
        self.messages_sent = (
            0  # data messages queued to a peer (control frames not counted)
        )
        self.bytes_received = 0  # WebSocket bytes off the wire, frame headers included
        self.bytes_sent = 0  # WebSocket bytes written to transports
        self.fanout_deliveries = 0  # a message offered to one room member
        self.catchups = 0  # joins with `since`: replays of what a client missed
        self.catchup_messages = 0
        #: Connections closed (1008) because their account was stopped: signed out or disabled.
        self.account_stop_closes = 0
        self.logins: dict[
            str, int
        ] = {}  # ok, bad_credentials, disabled, rate_limited, bad_request
        self.store_commit_seconds = Histogram(LATENCY_BUCKETS_S)
        self.store_batch_messages = Histogram(BATCH_BUCKETS)
        self.store_commit_failures = 0
        self.loop_lag_seconds = Histogram(LATENCY_BUCKETS_S)
        self.bus = BusCounters()
        #: (hook kind, outcome: allow, deny or failed) → calls to the app (``rawws.accounts.hooks``)
        self.hook_calls: dict[tuple[str, str], int] = {}

    def handshake(self, status: int) -> None:
        self.handshakes[status] = self.handshakes.get(status, 0) + 1

    def closed(self, code: int) -> None:
        self.close_codes[code] = self.close_codes.get(code, 0) + 1

    def hook_call(self, kind: str, outcome: str) -> None:
        key = (kind, outcome)
        self.hook_calls[key] = self.hook_calls.get(key, 0) + 1

    def login(self, outcome: str) -> None:
        self.logins[outcome] = self.logins.get(outcome, 0) + 1
