"""One bounded queue for password hashing, shared fairly by addresses and by target users.

argon2id is slow and memory-hard on purpose (64 MiB, ~0.3 s a hash), so two
threads do it off the event loop. Before this queue the threads' own queue had
no bound and no order but arrival: one address's 30 allowed bad logins put a
legitimate login 10 s back, and 100 addresses 38 s back. Now:

* every job is charged to its client address and to the user it is for; each
  may hold at most ``per_key`` jobs (queued or running) at once: past that,
  ``429`` with ``Retry-After``, before any hashing;
* at most ``waiting`` jobs wait in all: past that, ``503`` with ``Retry-After``;
* waiting jobs are served round-robin by address (a FIFO per address), so a
  newcomer waits for about one job per busy address, not for everything queued.

A job whose request went away while it waited is dropped unhashed; one already
running finishes (a thread cannot be interrupted) and stays charged until it does.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from rawws.errors import HttpError

T = TypeVar("T")

HASHING_THREADS = 2  # each argon2 hash holds 64 MiB: bound how many run at once
PER_KEY = (
    8  # jobs one address, or one target user, may hold at once (queued or running)
)
WAITING = 16  # jobs that may wait in all (about 8 hash-times of queue on two threads)
RETRY_AFTER_S = 1


@dataclass(eq=False)
class _Job(Generic[T]):
    keys: tuple[str, str]
    function: Callable[..., T]
    args: tuple[Any, ...]
    future: asyncio.Future[T]
    started: bool = field(default=False)


class FairHashing:
    """Runs slow hashing functions on a few threads, fairly, with bounded waiting."""

    def __init__(
        self,
        threads: int = HASHING_THREADS,
        *,
        per_key: int = PER_KEY,
        waiting: int = WAITING,
    ) -> None:
        if threads < 1 or per_key < 1 or waiting < 0:
            raise ValueError(
                "threads and per_key must be positive, waiting not negative"
            )
        self.threads = threads
        self.per_key = per_key
        self.waiting = waiting
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="rawws-argon2")
        self._queues: dict[str, deque[_Job[Any]]] = {}  # by address; order = turn
        self._held: Counter[str] = Counter()  # queued or running, per key
        self._queued = 0
        self._running = 0

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def running(self) -> int:
        return self._running

    async def run(
        self, address: str, user: str, function: Callable[..., T], *args: object
    ) -> T:
        """``function(*args)`` on a hashing thread when this address's turn comes; 429 or 503 if full."""
        keys = (f"address:{address}", f"user:{user}")
        if any(self._held[key] >= self.per_key for key in keys):
            raise HttpError(
                429,
                "too many password checks at once from this address or for this user",
                [("Retry-After", str(RETRY_AFTER_S))],
            )
        if self._queued >= self.waiting and self._running >= self.threads:
            raise HttpError(
                503,
                "too many password checks waiting; try again shortly",
                [("Retry-After", str(RETRY_AFTER_S))],
            )
        job: _Job[T] = _Job(
            keys, function, args, asyncio.get_running_loop().create_future()
        )
        for key in keys:
            self._held[key] += 1
        self._queues.setdefault(keys[0], deque()).append(job)
        self._queued += 1
        self._pump()
        try:
            return await job.future
        except asyncio.CancelledError:
            if not job.started:  # still waiting: drop it unhashed
                queue = self._queues.get(keys[0])
                if queue is not None and job in queue:
                    queue.remove(job)
                    if not queue:
                        del self._queues[keys[0]]
                    self._queued -= 1
                    self._release(job)
            raise

    def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        while self._running < self.threads and self._queues:
            address = next(iter(self._queues))
            queue = self._queues.pop(address)
            job = queue.popleft()
            if queue:
                self._queues[address] = queue  # to the back of the round
            self._queued -= 1
            job.started = True
            self._running += 1
            done = loop.run_in_executor(self._executor, job.function, *job.args)
            done.add_done_callback(functools.partial(self._finished, job))

    def _finished(self, job: _Job[Any], result: asyncio.Future[Any]) -> None:
        self._running -= 1
        self._release(job)
        if not job.future.done():
            if result.cancelled():
                job.future.cancel()
            elif (error := result.exception()) is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(result.result())
        self._pump()

    def _release(self, job: _Job[Any]) -> None:
        for key in job.keys:
            self._held[key] -= 1
            if self._held[key] <= 0:
                del self._held[key]

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
