"""Each node's lookup of API keys: the store's rows, cached per key id for one second.

A call must not cost a database round trip for its key, and a revoked key must stop
working on every node soon: each node keeps what it read of a key (or that there was
no such key) for ``ttl_s`` (1 s), then reads it again, so ``rawws api-key revoke``
takes effect everywhere within about a second with no message between the nodes. The
cache is bounded (the oldest entry goes first): ids presented by anyone, unknown ones
included, cannot grow it without end.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from rawws.apps.keys import ApiKey

DEFAULT_TTL_S = 1.0
DEFAULT_MAX_KEYS = 10_000

ReadKey = Callable[[str], Awaitable[ApiKey | None]]


class KeyBook:
    """``lookup(key_id)``: the key (revoked or not: the caller refuses a revoked one) or None."""

    def __init__(
        self,
        read: ReadKey,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.read = read
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self.clock = clock
        self.reads = 0  # store reads (tests: a cached key costs none)
        self._cache: OrderedDict[str, tuple[float, ApiKey | None]] = OrderedDict()

    async def lookup(self, key_id: str) -> ApiKey | None:
        now = self.clock()
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        key = await self.read(key_id)
        self.reads += 1
        self._cache.pop(key_id, None)
        self._cache[key_id] = (self.clock() + self.ttl_s, key)
        while len(self._cache) > self.max_keys:
            self._cache.popitem(last=False)
        return key
