"""Open WebSockets per user and per address, counted across every node in the bus's Redis.

A process alone sees only its own connections, so with N workers or nodes a
user could hold N times the limit. Here each count is a Redis hash
(``rawws:conns:user:<digest>``, ``rawws:conns:address:<digest>``) with one
field per node: that node's open connections for the key. Admitting is one
Lua script (atomic): it sums the fields of live nodes, refuses when a sum is
at its limit, else adds one to this node's field of both hashes. Counting out
subtracts one.

A node that dies cannot count its connections out, so its fields must stop
counting by themselves: every node holds a lease, ``rawws:conns:node:<id>``,
that it renews every ``LEASE_S / 3``; the script ignores (and deletes) the
field of a node whose lease has expired. A killed node's connections thus
stop counting within ``LEASE_S``, the time its clients need to notice and
reconnect anyway. The hashes themselves expire three leases after the last
renewal, so nothing outlives the connections it counts. When a call times out
its script may still have run: the next renewal writes the node's true count
into the hashes concerned, so a lost answer never takes a slot for good.

When Redis does not answer (the degraded mode): the connection is admitted on
the node's own count alone (which ``ConnectionLimits`` always keeps), so for
the outage the cluster allows up to N times the limit. Chat WebSockets need a
ticket, and a ticket cannot be spent without Redis (503), so in practice this
only lets ``/echo`` through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import Counter
from collections.abc import Callable

import redis.asyncio as aioredis

from rawws.accounts.shared import REDIS_FAILURES, Breaker, digest

log = logging.getLogger("rawws.accounts")

LEASE_S = 15.0  # a dead node's connections stop counting after this long
# A live node renews its lease (and its keys' TTL) every lease / 3; a count's hash
# outlives the last renewal by 3 leases.

# KEYS: the hashes to count in (address, then user); ARGV[1]: this node; ARGV[2]: the lease key
# prefix; ARGV[3]: the hashes' TTL in ms; ARGV[3 + i]: the limit of KEYS[i].
# Returns 0 when counted in, else the index of the key at its limit.
ADMIT_SCRIPT = """
local node = ARGV[1]
local leases = ARGV[2]
local function live_total(key)
  local fields = redis.call('HGETALL', key)
  local total = 0
  for i = 1, #fields, 2 do
    local holder = fields[i]
    if holder == node or redis.call('EXISTS', leases .. holder) == 1 then
      total = total + tonumber(fields[i + 1])
    else
      redis.call('HDEL', key, holder)
    end
  end
  return total
end
for i, key in ipairs(KEYS) do
  if live_total(key) >= tonumber(ARGV[3 + i]) then
    return i
  end
end
for _, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, node, 1)
  redis.call('PEXPIRE', key, ARGV[3])
end
return 0
"""

# KEYS: the hashes to count out of; ARGV[1]: this node. A field never goes below zero.
RELEASE_SCRIPT = """
for _, key in ipairs(KEYS) do
  if redis.call('HINCRBY', key, ARGV[1], -1) <= 0 then
    redis.call('HDEL', key, ARGV[1])
  end
end
return 0
"""


class SharedConnections:
    """A ``rawws.server.limits.SharedCounts`` over Redis, for one node (``start`` it, ``close`` it)."""

    def __init__(
        self,
        client: aioredis.Redis,
        timeout_s: float,
        prefix: str = "rawws",
        *,
        lease_s: float = LEASE_S,
        breaker: Breaker | None = None,
    ) -> None:
        self.client = client
        self.breaker = breaker or Breaker()
        self.timeout_s = timeout_s
        self.prefix = prefix
        self.lease_s = lease_s
        self.key_ttl_ms = int(3 * lease_s * 1000)
        #: This process among the holders of a count: random, so a restarted node never inherits a dead one's counts.
        self.node = secrets.token_hex(8)
        self._admit = client.register_script(ADMIT_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)
        # hash key → this node's connections counted there
        self._held: Counter[str] = Counter()
        # Keys whose script may or may not have run (a timeout): the next renewal writes
        # this node's true count there, so a lost answer leaves no slot taken for good.
        self._unsure: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._renewer: asyncio.Task[None] | None = None
        #: Connections admitted on the node's own count alone (Redis did not answer).
        self.degraded = 0

    @property
    def _lease_key(self) -> str:
        return f"{self.prefix}:conns:node:{self.node}"

    def _key(self, kind: str, value: str) -> str:
        return f"{self.prefix}:conns:{kind}:{digest(value)}"

    async def start(self) -> None:
        """Take the lease now (a failure is retried by the renewer) and renew it until ``close``."""
        with contextlib.suppress(*REDIS_FAILURES):
            await self._renew()
        self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())

    async def admit(
        self, user: str | None, address: str, per_user: int, per_address: int
    ) -> Callable[[], None] | None:
        keys = [self._key("address", address)]
        limits = [per_address]
        if user is not None:
            keys.append(self._key("user", user))
            limits.append(per_user)
        if not self.breaker.allow():  # Redis failed a moment ago: no wait for it now
            self.degraded += 1
            return _nothing
        try:
            async with asyncio.timeout(self.timeout_s):
                refused = int(
                    await self._admit(
                        keys=keys,
                        args=[
                            self.node,
                            self._lease_prefix,
                            self.key_ttl_ms,
                            *limits,
                        ],
                    )
                )
        except REDIS_FAILURES:
            self.breaker.failed()
            self.degraded += 1
            self._unsure.update(keys)
            log.debug(
                "shared connection count unavailable; the node's own limit applies"
            )
            return _nothing
        self.breaker.succeeded()
        if refused:
            return None
        self._held.update(keys)
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self._held.subtract(keys)
            self._held += Counter()  # drop the keys at zero
            task = asyncio.get_running_loop().create_task(self._count_out(keys))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return release

    @property
    def _lease_prefix(self) -> str:
        return f"{self.prefix}:conns:node:"

    async def _count_out(self, keys: list[str]) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._release(keys=keys, args=[self.node])
        except REDIS_FAILURES:
            self._unsure.update(keys)  # the next renewal writes the true count
            log.debug("counting a connection out of the shared count failed")

    async def _renew(self) -> None:
        """Renew the lease and the TTL of every hash this node counts in; where an answer was
        lost, set this node's field to its true count (a count in flight is then short by one
        until the next renewal: the safe side)."""
        unsure, self._unsure = (
            self._unsure,
            set(),
        )  # what goes wrong meanwhile waits its turn
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self._lease_key, b"1", px=int(self.lease_s * 1000))
        for key in unsure - set(self._held):
            pipe.hdel(key, self.node)
        for key, count in self._held.items():
            if key in unsure:
                pipe.hset(key, self.node, count)
            pipe.pexpire(key, self.key_ttl_ms)
        try:
            async with asyncio.timeout(self.timeout_s):
                await pipe.execute()
        except BaseException:
            self._unsure |= unsure
            raise

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                await self._renew()
            except REDIS_FAILURES:
                log.debug("renewing the connection-count lease failed; retrying")

    async def close(self) -> None:
        """Stop renewing and give the lease up: whatever this node still counted stops counting."""
        tasks = [t for t in (self._renewer, *self._tasks) if t is not None]
        if self._renewer is not None:
            self._renewer.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self.timeout_s * 2)
        with contextlib.suppress(*REDIS_FAILURES):
            async with asyncio.timeout(self.timeout_s):
                await self.client.delete(self._lease_key)


def _nothing() -> None:
    """The release of a connection the shared count never counted."""
