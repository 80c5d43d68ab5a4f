"""State the nodes of one chat must share, kept in the bus's Redis.

* Spent tickets: ``SET rawws:ticket:<jti> NX PX <until expiry>``: the first
  node to spend a ticket wins, every other node sees it spent. A ticket is
  never stored, only its id, and only until it expires anyway.
* Login attempts: one counter per user and per address per window
  (``INCR`` + ``EXPIRE`` in one transaction), so the cluster allows the
  configured logins per minute, not that many times the number of nodes.
  Keys carry a hash of the user name or address, never the name itself.

Every call has a timeout; when Redis does not answer, ``SharedUnavailable``
is raised and the caller decides (a ticket is refused, a login falls back to
the node's own limit).
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import redis.asyncio as aioredis

from rawws.errors import RawwsError

TICKET_LEEWAY_S = (
    5.0  # kept a little past expiry: the token check allows this much clock skew
)


class SharedUnavailable(RawwsError):
    """Redis did not answer in time."""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class SharedState:
    def __init__(
        self, client: aioredis.Redis, timeout_s: float, prefix: str = "rawws"
    ) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self.prefix = prefix

    async def spend_ticket(self, token_id: str, expires_at: float) -> bool:
        """``True`` the first time ``token_id`` is spent anywhere in the cluster."""
        ttl_ms = max(1000, int((expires_at + TICKET_LEEWAY_S - time.time()) * 1000))
        key = f"{self.prefix}:ticket:{_digest(token_id)}"
        try:
            async with asyncio.timeout(self.timeout_s):
                return bool(await self.client.set(key, b"1", nx=True, px=ttl_ms))
        except (OSError, TimeoutError, aioredis.RedisError) as exc:
            raise SharedUnavailable(str(exc) or type(exc).__name__) from None

    async def take_login(
        self, kind: str, key: str, limit: int, period_s: float
    ) -> float:
        """Count one login attempt for ``key``: 0.0 when within ``limit`` per ``period_s``,
        else the seconds until the window ends (fixed windows: at most twice ``limit``
        across a window boundary)."""
        now = time.time()
        window = int(now // period_s)
        name = f"{self.prefix}:login:{kind}:{_digest(key)}:{window}"
        try:
            async with asyncio.timeout(self.timeout_s):
                pipe = self.client.pipeline(transaction=True)
                pipe.incr(name)
                pipe.expire(name, int(period_s) + 1)
                count, _ = await pipe.execute()
        except (OSError, TimeoutError, aioredis.RedisError) as exc:
            raise SharedUnavailable(str(exc) or type(exc).__name__) from None
        if int(count) <= limit:
            return 0.0
        return max(0.0, (window + 1) * period_s - now)
