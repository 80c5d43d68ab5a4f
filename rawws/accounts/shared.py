"""State the nodes of one chat must share, kept in the bus's Redis.

* Spent tickets: ``rawws:ticket:<jti>`` set, if absent, to a random id of the
  attempt, until expiry (one Lua script): the first node to spend a ticket wins,
  every other node sees it spent. A ticket is never stored, only its id, and
  only until it expires anyway. An attempt refused for want of an answer (a
  503 "try again") is taken back once Redis answers: its key becomes
  ``free:<attempt>``, which that attempt, arriving late from a stalled Redis's
  socket, cannot take, and any retry can.
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
import contextlib
import hashlib
import secrets
import time

import redis.asyncio as aioredis

from rawws.errors import RawwsError

TICKET_LEEWAY_S = (
    5.0  # kept a little past expiry: the token check allows this much clock skew
)


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


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class SharedState:
    def __init__(
        self, client: aioredis.Redis, timeout_s: float, prefix: str = "rawws"
    ) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self.prefix = prefix
        self._taking_back: dict[str, asyncio.Task[None]] = {}

    async def spend_ticket(self, token_id: str, expires_at: float) -> bool:
        """``True`` the first time ``token_id`` is spent anywhere in the cluster."""
        ttl_ms = max(1000, int((expires_at + TICKET_LEEWAY_S - time.time()) * 1000))
        key = f"{self.prefix}:ticket:{_digest(token_id)}"
        attempt = secrets.token_hex(8)
        pending = self._taking_back.get(key)
        try:
            async with asyncio.timeout(self.timeout_s):
                if pending is not None:  # a retry here waits for the take-back
                    await asyncio.shield(pending)
                spent = await self.client.eval(SPEND_SCRIPT, 1, key, attempt, ttl_ms)
                return bool(spent)
        except (OSError, TimeoutError, aioredis.RedisError) as exc:
            if key not in self._taking_back:
                task = asyncio.create_task(self._take_back(key, attempt, expires_at))
                self._taking_back[key] = task
                task.add_done_callback(lambda _: self._taking_back.pop(key, None))
            raise SharedUnavailable(str(exc) or type(exc).__name__) from None

    async def _take_back(self, key: str, attempt: str, expires_at: float) -> None:
        """Undo a refused attempt's spend, whether or not Redis ran it, as soon as Redis answers."""
        while time.time() < expires_at + TICKET_LEEWAY_S:
            ttl_ms = int((expires_at + TICKET_LEEWAY_S - time.time()) * 1000)
            with contextlib.suppress(OSError, TimeoutError, aioredis.RedisError):
                async with asyncio.timeout(self.timeout_s):
                    await self.client.eval(
                        TAKE_BACK_SCRIPT, 1, key, attempt, max(1000, ttl_ms)
                    )
                    return
            await asyncio.sleep(TAKE_BACK_RETRY_S)

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
