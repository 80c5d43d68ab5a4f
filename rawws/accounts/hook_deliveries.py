"""After-hooks (``disconnect``): written to the store first, then sent by a loop every node runs.

``enqueue`` writes the row (``rawws.store.hooks``) off the caller's path; the loop claims the rows due,
POSTs each with its own id as ``X-Rawws-Delivery`` (the same on every retry), deletes it on a 2xx and
otherwise sets it due again after ``retry_delay`` (1 s doubling to 60 s), until it expires
(``DELIVERY_TTL_S``, 24 h). A claim holds a row for ``lease_s``, longer than a send may take, so two
nodes never send one delivery at once, and one that dies mid-send leaves it to be retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from rawws.accounts.hook_wire import (
    DELIVERED,
    DELIVERY_TTL_S,
    FAILED,
    delivered,
    encode_body,
    new_delivery_id,
    retry_delay,
)
from rawws.accounts.hooks import HookClient, HookFailed
from rawws.store.hooks import HookDeliveriesSql, HookDelivery

log = logging.getLogger("rawws.hooks")

#: How often a node looks for deliveries due when nothing woke it (another node's rows, retries).
POLL_S = 1.0
#: Deliveries claimed at once by one node.
CLAIM_BATCH = 32
#: How long a claim keeps other nodes off a row, beyond the call's own timeout.
LEASE_MARGIN_S = 10.0


class HookDeliveries:
    """The after-hooks' queue and the loop that sends it."""

    def __init__(
        self,
        store: HookDeliveriesSql,
        client: HookClient,
        *,
        poll_s: float = POLL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.client = client
        self.poll_s = poll_s
        self.clock = clock
        self.lease_s = client.timeout_s + LEASE_MARGIN_S
        self._writes: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._closing = False

    def enqueue(self, kind: str, payload: dict[str, object]) -> None:
        """Store an after-hook to send (from a callback: the write runs as its own task)."""
        task = asyncio.get_running_loop().create_task(self.add(kind, payload))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def add(self, kind: str, payload: dict[str, object]) -> None:
        now = self.clock()
        body = encode_body(payload).decode("utf-8")
        try:
            await self.store.add_hook_delivery(
                new_delivery_id(), kind, body, now, now + DELIVERY_TTL_S
            )
        except Exception:
            log.exception("could not store a %s hook", kind)
            return
        self._wake.set()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Before the store closes: the rows being written are written, the loop stopped (a row being
        sent stays, to be sent again by this node or another)."""
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=self.client.timeout_s + 5)
        self._closing = True
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)

    async def _run(self) -> None:
        while not self._closing:
            self._wake.clear()  # a row written from here on wakes the next round
            try:
                while await self.send_due() and not self._closing:
                    pass
            except Exception:  # the store failed: try again next round
                log.exception("hook deliveries: a round failed")
            try:  # asyncio.timeout, not wait_for: 3.11's wait_for may swallow a cancellation
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def send_due(self) -> int:
        """Claim and send the deliveries due now; how many were claimed."""
        claimed, expired = await self.store.claim_hook_deliveries(
            self.clock(), self.lease_s, CLAIM_BATCH
        )
        if expired:
            log.warning("hook deliveries expired unacknowledged: %d", expired)
        await asyncio.gather(*(self._send(delivery) for delivery in claimed))
        return len(claimed)

    async def _send(self, delivery: HookDelivery) -> None:
        try:
            status, _ = await self.client.post(
                delivery.kind, delivery.body.encode("utf-8"), delivery.id
            )
        except HookFailed as exc:
            cause = str(exc)
        else:
            if delivered(status):
                self.client.counters.hook_call(delivery.kind, DELIVERED)
                await self.store.finish_hook_delivery(delivery.id)
                return
            cause = f"status {status}"
        self.client.counters.hook_call(delivery.kind, FAILED)
        delay = retry_delay(delivery.attempts)
        log.warning(
            "hook not delivered hook=%s delivery=%s attempt=%d: %s; again in %g s",
            delivery.kind,
            delivery.id,
            delivery.attempts,
            cause,
            delay,
        )
        await self.store.retry_hook_delivery(delivery.id, self.clock() + delay)
