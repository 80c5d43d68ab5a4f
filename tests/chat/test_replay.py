"""Replay reads shared by concurrent callers (``rawws.chat.replay``): fewer queries, never a stale answer."""

from __future__ import annotations

import asyncio

import pytest

from rawws.chat.replay import SharedReads


class GatedStore:
    """A store whose queries read their answer when they start and finish when the gate opens."""

    def __init__(self) -> None:
        self.last_id = 1
        self.started = 0
        self.gate = asyncio.Event()
        self.fail_next = False

    async def last_message_id(self, room: str) -> int:
        self.started += 1
        answer = self.last_id  # what the database holds when the query runs
        fail, self.fail_next = self.fail_next, False
        await self.gate.wait()
        if fail:
            raise RuntimeError("database went away")
        return answer

    async def messages_after(self, room: str, after: int, limit: int) -> list:
        self.started += 1
        await self.gate.wait()
        return [(room, after, limit)]


async def test_a_storm_of_identical_reads_runs_at_most_two_queries():
    store = GatedStore()
    reads = SharedReads(store)  # type: ignore[arg-type]
    callers = [asyncio.create_task(reads.last_message_id("lobby")) for _ in range(500)]
    await asyncio.sleep(0)
    store.gate.set()
    assert await asyncio.gather(*callers) == [1] * 500
    assert (
        store.started == 1 and reads.queries == 1 and reads.callers == 500
    )  # all asked before it began


async def test_a_caller_that_arrives_during_a_query_gets_a_query_started_after_it():
    """A message stored while the first query runs must be in the answer of whoever asked after it."""
    store = GatedStore()
    reads = SharedReads(store)  # type: ignore[arg-type]
    first = asyncio.create_task(reads.last_message_id("lobby"))
    while not store.started:
        await asyncio.sleep(0)
    store.last_id = 2  # stored (and published) now: the late caller joined after this
    late = asyncio.create_task(reads.last_message_id("lobby"))
    await asyncio.sleep(0)
    store.gate.set()
    assert await first == 1
    assert await late == 2
    assert store.started == 2


async def test_callers_during_a_running_query_share_the_next_run():
    store = GatedStore()
    reads = SharedReads(store)  # type: ignore[arg-type]
    first = asyncio.create_task(reads.last_message_id("lobby"))
    while not store.started:
        await asyncio.sleep(0)
    late = [asyncio.create_task(reads.last_message_id("lobby")) for _ in range(100)]
    await asyncio.sleep(0)
    store.gate.set()
    assert await first == 1 and await asyncio.gather(*late) == [1] * 100
    assert store.started == 2


async def test_different_queries_are_not_shared():
    store = GatedStore()
    store.gate.set()
    reads = SharedReads(store)  # type: ignore[arg-type]
    pages = await asyncio.gather(
        reads.messages_after("a", 5, 10),
        reads.messages_after("a", 6, 10),
        reads.messages_after("b", 5, 10),
        reads.messages_after("a", 5, 10),
    )
    assert pages == [[("a", 5, 10)], [("a", 6, 10)], [("b", 5, 10)], [("a", 5, 10)]]
    assert (
        store.started == 3
    )  # the second ("a", 5) asked before the first had begun: it shares it


async def test_a_caller_going_away_does_not_cancel_the_others():
    store = GatedStore()
    reads = SharedReads(store)  # type: ignore[arg-type]
    leaving = asyncio.create_task(reads.last_message_id("lobby"))
    staying = asyncio.create_task(reads.last_message_id("lobby"))
    await asyncio.sleep(0)
    leaving.cancel()
    store.gate.set()
    assert await staying == 1
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_a_failed_query_fails_its_callers_and_the_next_one_runs_afresh():
    store = GatedStore()
    store.fail_next = True
    reads = SharedReads(store)  # type: ignore[arg-type]
    callers = [asyncio.create_task(reads.last_message_id("lobby")) for _ in range(3)]
    await asyncio.sleep(0)
    store.gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(result, RuntimeError) for result in results)
    assert await reads.last_message_id("lobby") == 1
    await reads.wait_idle()
