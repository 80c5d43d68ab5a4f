"""Replay reads shared by the members of a room who ask at once (a reconnect storm): no thundering herd.

When thousands of clients reconnect together, each joins its room with
``since`` and the chat reads the room's last id and the messages after
``since``: the same two queries, thousands of times, queued one after another
on the store's connection. ``SharedReads`` runs each distinct query once for
everyone who asks while it is being asked.

The rule that keeps it correct: **every caller is answered by a query that
started after it asked**. Callers that ask before the query has begun share
it. A caller that arrives once the same query is running does not take that
query's answer (it may predate a message stored just before the caller
joined, which the caller would then miss); it waits for the next run, which
starts as soon as the running one ends and answers every caller that queued
meanwhile. So a storm of N identical reads costs at most two queries in
flight, not N.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from rawws.store.base import Store, StoredMessage


class SharedReads:
    """``last_message_id`` and ``messages_after`` of a ``Store``, each distinct query shared by concurrent callers."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._running: dict[Hashable, _Run] = {}
        self._next: dict[Hashable, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Queries run and callers answered (the difference is what sharing saved).
        self.queries = 0
        self.callers = 0

    async def last_message_id(self, room: str) -> int:
        result: int = await self._read(
            ("last", room), lambda: self.store.last_message_id(room)
        )
        return result

    async def messages_after(
        self, room: str, after: int, limit: int
    ) -> list[StoredMessage]:
        result: list[StoredMessage] = await self._read(
            ("after", room, after, limit),
            lambda: self.store.messages_after(room, after, limit),
        )
        return result

    async def wait_idle(self) -> None:
        """Until no query runs (before the store closes)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def _read(self, key: Hashable, query: Callable[[], Awaitable[Any]]) -> Any:
        self.callers += 1
        run = self._running.get(key)
        if run is not None and not run.started:
            future = (
                run.future
            )  # it has not read anything yet: its answer is fresh enough for us too
        elif run is not None:
            queued = self._next.get(key)
            if queued is None:
                queued = self._next[key] = _quiet_future()
            future = queued
        else:
            future = _quiet_future()
            self._launch(key, query, future)
        # Shielded: one caller going away (its connection closed) must not cancel the others' answer.
        return await asyncio.shield(future)

    def _launch(
        self,
        key: Hashable,
        query: Callable[[], Awaitable[Any]],
        future: asyncio.Future[Any],
    ) -> None:
        record = self._running[key] = _Run(future)
        self.queries += 1

        async def run() -> Any:
            record.started = True
            return await query()

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)

        def finished(task: asyncio.Task[Any]) -> None:
            self._tasks.discard(task)
            del self._running[key]
            if task.cancelled():
                future.cancel()
            elif (failure := task.exception()) is not None:
                future.set_exception(failure)
            else:
                future.set_result(task.result())
            queued = self._next.pop(key, None)
            if queued is not None:
                self._launch(key, query, queued)

        task.add_done_callback(finished)


class _Run:
    __slots__ = ("future", "started")

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future
        self.started = False


def _quiet_future() -> asyncio.Future[Any]:
    """A future whose exception counts as retrieved even if every caller went away."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.add_done_callback(lambda done: done.cancelled() or done.exception())
    return future
