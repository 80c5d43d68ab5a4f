"""Token buckets keyed by anything (a user name, a client address, a connection), clock passed in."""

from __future__ import annotations

from dataclasses import dataclass

MAX_TRACKED_KEYS = 10_000  # beyond this, full (idle) buckets are forgotten


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``capacity`` actions at once, refilled at ``capacity / per_s`` per second."""

    def __init__(self, capacity: int, per_s: float) -> None:
        if capacity <= 0 or per_s <= 0:
            raise ValueError("capacity and period must be positive")
        self.capacity = capacity
        self.rate = capacity / per_s
        self._buckets: dict[object, _Bucket] = {}

    def acquire(self, key: object, now: float) -> float:
        """Take one token: 0.0 when allowed, else the seconds until one is available."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED_KEYS:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(float(self.capacity), now)
        else:
            bucket.tokens = min(
                self.capacity, bucket.tokens + (now - bucket.updated) * self.rate
            )
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        self._buckets = {
            key: bucket
            for key, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.updated) * self.rate < self.capacity
        }
