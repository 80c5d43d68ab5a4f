"""State the nodes of one chat must share, kept in the bus's Redis.

* Spent tickets: ``SET rawws:ticket:<jti> NX PX <until expiry>``: the first
  node to spend a ticket wins, every other node sees it spent. A ticket is
  never stored, only its id, and only until it expires anyway.
* Rate limits (logins, registrations, tickets): one token bucket per key in a
  Redis hash, taken by one Lua script (atomic, timed by Redis's own clock so
  the nodes' clocks need not agree). The bucket is the one each node keeps in
  memory (``rawws.core.ratelimit``): a burst of ``limit``, refilled over
  ``period_s``; shared, the cluster allows that many, not that many times the
  number of nodes. Keys carry a hash of the user name or address, never the
  name itself.
* Open WebSockets: ``SharedConnections`` below.

Every call has a timeout; when Redis does not answer, ``SharedUnavailable``
is raised and the caller decides (a ticket is refused with 503; a rate limit
falls back to the node's own limit, which always holds too).
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

# KEYS[1]: the bucket; ARGV: capacity, period in seconds. Returns the wait in seconds, as text
# (a Lua number would reach the client truncated to an integer).
TAKE_SCRIPT = """
local capacity = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local rate = capacity / period
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1])
if tokens == nil then
  tokens = capacity
else
  tokens = math.min(capacity, tokens + math.max(0, now - tonumber(state[2])) * rate)
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'updated', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(period * 1000))
return string.format('%.6f', wait)
"""


class SharedUnavailable(RawwsError):
    """Redis did not answer in time."""


def digest(text: str) -> str:
    """A key part for ``text`` (a user name, an address): stable, and not the text itself."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def unavailable(exc: BaseException) -> SharedUnavailable:
    return SharedUnavailable(str(exc) or type(exc).__name__)


REDIS_FAILURES = (OSError, TimeoutError, aioredis.RedisError)


class SharedState:
    def __init__(
        self, client: aioredis.Redis, timeout_s: float, prefix: str = "rawws"
    ) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self.prefix = prefix
        self._take = client.register_script(TAKE_SCRIPT)

    async def spend_ticket(self, token_id: str, expires_at: float) -> bool:
        """``True`` the first time ``token_id`` is spent anywhere in the cluster."""
        ttl_ms = max(1000, int((expires_at + TICKET_LEEWAY_S - time.time()) * 1000))
        key = f"{self.prefix}:ticket:{digest(token_id)}"
        try:
            async with asyncio.timeout(self.timeout_s):
                return bool(await self.client.set(key, b"1", nx=True, px=ttl_ms))
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from None

    async def take(self, kind: str, key: str, limit: int, period_s: float) -> float:
        """Take one token from the cluster's bucket ``kind``/``key`` (a burst of ``limit``, refilled
        over ``period_s``): 0.0 when allowed, else the seconds until a token is back."""
        name = f"{self.prefix}:limit:{kind}:{digest(key)}"
        try:
            async with asyncio.timeout(self.timeout_s):
                wait = await self._take(keys=[name], args=[limit, period_s])
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from None
        return float(wait)
