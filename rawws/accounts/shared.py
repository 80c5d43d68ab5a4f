"""State the nodes of one chat must share, kept in the bus's Redis.

* Spent tickets: ``rawws:ticket:<jti>`` set, if absent, to a random id of the
  attempt, until expiry (one Lua script): the first node to spend a ticket wins,
  every other node sees it spent. A ticket is never stored, only its id, and
  only until it expires anyway. An attempt refused for want of an answer (a
  503 "try again") is taken back once Redis answers: its key becomes
  ``free:<attempt>``, which that attempt, arriving late from a stalled Redis's
  socket, cannot take, and any retry can.
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
falls back to the node's own limit, which always holds too). After a call
failed, the ``Breaker`` the node's calls share makes the next ones fail at once
for a second, and lets one through each second to learn whether Redis is back:
a stalled Redis costs one timeout a second, not one per login or upgrade.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
from collections.abc import Callable

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


# KEYS[1] the ticket; ARGV[1] this attempt; ARGV[2] milliseconds to keep it.
SPEND_SCRIPT = """
local held = redis.call('GET', KEYS[1])
if held and (string.sub(held, 1, 5) ~= 'free:' or held == 'free:' .. ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
TAKE_BACK_SCRIPT = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], 'free:' .. ARGV[1], 'PX', ARGV[2])
return 1
"""
TAKE_BACK_RETRY_S = 0.2


class SharedUnavailable(RawwsError):
    """Redis did not answer in time."""


def digest(text: str) -> str:
    """A key part for ``text`` (a user name, an address): stable, and not the text itself."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def unavailable(exc: BaseException) -> SharedUnavailable:
    return SharedUnavailable(str(exc) or type(exc).__name__)


REDIS_FAILURES = (OSError, TimeoutError, aioredis.RedisError)
BREAKER_PAUSE_S = 1.0


class Breaker:
    """Whether a call to Redis is worth making: not for ``pause_s`` after one failed (sans-I/O).

    Once the pause is over, one call goes through (each pause lets one through) and
    its outcome decides: a success closes the breaker, a failure starts a new pause.
    """

    def __init__(
        self,
        pause_s: float = BREAKER_PAUSE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pause_s = pause_s
        self.clock = clock
        self._failing = False
        self._skip_until = 0.0
        self.skipped = 0  # calls failed at once, without asking Redis

    def allow(self) -> bool:
        """``True``: make the call (then report ``succeeded``/``failed``); ``False``: fail it at once."""
        if not self._failing:
            return True
        now = self.clock()
        if now < self._skip_until:
            self.skipped += 1
            return False
        self._skip_until = (
            now + self.pause_s
        )  # this one tries; the others wait a pause more
        return True

    def succeeded(self) -> None:
        self._failing = False

    def failed(self) -> None:
        self._failing = True
        self._skip_until = self.clock() + self.pause_s


def skipped() -> SharedUnavailable:
    return SharedUnavailable(
        "Redis failed to answer a moment ago; asking again shortly"
    )


class SharedState:
    def __init__(
        self,
        client: aioredis.Redis,
        timeout_s: float,
        prefix: str = "rawws",
        *,
        breaker: Breaker | None = None,
    ) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self.prefix = prefix
        self.breaker = breaker or Breaker()
        self._take = client.register_script(TAKE_SCRIPT)
        self._taking_back: dict[str, asyncio.Task[None]] = {}

    async def spend_ticket(self, token_id: str, expires_at: float) -> bool:
        """``True`` the first time ``token_id`` is spent anywhere in the cluster."""
        ttl_ms = max(1000, int((expires_at + TICKET_LEEWAY_S - time.time()) * 1000))
        key = f"{self.prefix}:ticket:{digest(token_id)}"
        attempt = secrets.token_hex(8)
        pending = self._taking_back.get(key)
        if not self.breaker.allow():
            raise skipped()
        try:
            async with asyncio.timeout(self.timeout_s):
                if pending is not None:  # a retry here waits for the take-back
                    await asyncio.shield(pending)
                spent = await self.client.eval(SPEND_SCRIPT, 1, key, attempt, ttl_ms)
            self.breaker.succeeded()
            return bool(spent)
        except REDIS_FAILURES as exc:
            self.breaker.failed()
            if key not in self._taking_back:
                task = asyncio.create_task(self._take_back(key, attempt, expires_at))
                self._taking_back[key] = task
                task.add_done_callback(lambda _: self._taking_back.pop(key, None))
            raise unavailable(exc) from None

    async def _take_back(self, key: str, attempt: str, expires_at: float) -> None:
        """Undo a refused attempt's spend, whether or not Redis ran it, as soon as Redis answers."""
        while time.time() < expires_at + TICKET_LEEWAY_S:
            ttl_ms = int((expires_at + TICKET_LEEWAY_S - time.time()) * 1000)
            with contextlib.suppress(*REDIS_FAILURES):
                async with asyncio.timeout(self.timeout_s):
                    await self.client.eval(
                        TAKE_BACK_SCRIPT, 1, key, attempt, max(1000, ttl_ms)
                    )
                    return
            await asyncio.sleep(TAKE_BACK_RETRY_S)

    async def take(self, kind: str, key: str, limit: int, period_s: float) -> float:
        """Take one token from the cluster's bucket ``kind``/``key`` (a burst of ``limit``, refilled
        over ``period_s``): 0.0 when allowed, else the seconds until a token is back."""
        name = f"{self.prefix}:limit:{kind}:{digest(key)}"
        if not self.breaker.allow():
            raise skipped()
        try:
            async with asyncio.timeout(self.timeout_s):
                wait = await self._take(keys=[name], args=[limit, period_s])
        except REDIS_FAILURES as exc:
            self.breaker.failed()
            raise unavailable(exc) from None
        self.breaker.succeeded()
        return float(wait)
