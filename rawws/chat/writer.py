"""Group commit: accepted messages are stored in batches, whatever arrived while the last commit ran.

One commit per batch instead of one per message: under load the batch grows and
the cost per message falls; idle, a message is stored alone at once. A message
is acknowledged (``on_stored``) only once its batch is committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from rawws.config import DEFAULT_CHAT_MAX_BATCH_MESSAGES
from rawws.core.counters import Counters
from rawws.store import NewMessage, Store, StoredMessage
from rawws.store.outage import StoreHealth, StoreUnavailable

log = logging.getLogger("rawws.chat")


@dataclass(slots=True)
class _Pending:
    item: NewMessage
    on_stored: Callable[[StoredMessage], None]
    on_failed: Callable[[], None]


class MessageWriter:
    """Stores accepted messages in batches: whatever arrived while the last commit ran goes in the next."""

    def __init__(
        self,
        store: Store,
        health: StoreHealth | None = None,
        max_batch: int = DEFAULT_CHAT_MAX_BATCH_MESSAGES,
        counters: Counters | None = None,
    ) -> None:
        self.store = store
        self.counters = counters if counters is not None else Counters()
        self.max_batch = max_batch
        self.health = health if health is not None else StoreHealth()
        self._pending: list[_Pending] = []
        self._task: asyncio.Task[None] | None = None

    def submit(
        self,
        item: NewMessage,
        on_stored: Callable[[StoredMessage], None],
        on_failed: Callable[[], None],
    ) -> None:
        self._pending.append(_Pending(item, on_stored, on_failed))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._pending:
            batch, self._pending = (
                self._pending[: self.max_batch],
                self._pending[self.max_batch :],
            )
            began = time.perf_counter()
            try:
                stored = await self.health.call(
                    "storing messages",
                    self.store.append_messages([p.item for p in batch]),
                )
            except Exception as exc:
                self.counters.store_commit_failures += 1
                if not isinstance(
                    exc, StoreUnavailable
                ):  # an outage is logged once, when it starts
                    log.exception("storing %d message(s) failed", len(batch))
                for pending in batch:
                    pending.on_failed()
                continue
            self.counters.store_commit_seconds.observe(time.perf_counter() - began)
            self.counters.store_batch_messages.observe(len(batch))
            for pending, message in zip(batch, stored, strict=True):
                try:
                    pending.on_stored(message)
                except (
                    Exception
                ):  # one bad callback must not strand the rest of the queue
                    log.exception(
                        "delivering message %s/%d failed", message.room, message.id
                    )

    async def flush(self) -> None:
        """Wait until everything submitted is stored (shutdown)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
