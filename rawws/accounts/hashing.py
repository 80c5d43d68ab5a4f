"""One bounded queue for password hashing, shared fairly by addresses and by target users.

argon2id is slow and memory-hard on purpose (64 MiB, ~0.3 s a hash), so two
threads do it off the event loop. Before this queue the threads' own queue had
no bound and no order but arrival: one address's 30 allowed bad logins put a
legitimate login 10 s back, and 100 addresses 38 s back. Now:

* every job is charged to its client address, which may hold at most
  ``per_address`` jobs (queued or running) at once: past that, ``429`` with
  ``Retry-After``, before any hashing;
* at most ``waiting`` jobs wait in all: past that, ``503`` with ``Retry-After``;
* waiting jobs are served round-robin by address (a FIFO per address), so a
  newcomer waits for about one job per busy address, not for everything queued;
* and by target user: a free thread takes the next address whose first job is
  for a user with nothing running, so guesses at one name never hold both
  threads while others wait. A user's share is scheduled, not refused: refusing
  checks for a name others are guessing would lock its owner out.

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
PER_ADDRESS = 8  # jobs one address may hold at once (queued or running)
WAITING = 16  # jobs that may wait in all (about 8 hash-times of queue on two threads)
RETRY_AFTER_S = 1


@dataclass(eq=False)
class _Job(Generic[T]):
    address: str
    user: str
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
        per_address: int = PER_ADDRESS,
        waiting: int = WAITING,
    ) -> None:
        if threads < 1 or per_address < 1 or waiting < 0:
            raise ValueError(
                "threads and per_address must be positive, waiting not negative"
            )
        self.threads = threads
        self.per_address = per_address
        self.waiting = waiting
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="rawws-argon2")
        self._queues: dict[str, deque[_Job[Any]]] = {}  # by address; order = turn
        self._held: Counter[str] = Counter()  # queued or running, per address
        self._running_for: Counter[str] = Counter()  # running, per user
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
        if self._held[address] >= self.per_address:
            raise HttpError(
                429,
                "too many password checks at once from this address",
                [("Retry-After", str(RETRY_AFTER_S))],
            )
        if self._queued >= self.waiting and self._running >= self.threads:
            raise HttpError(
                503,
                "too many password checks waiting; try again shortly",
                [("Retry-After", str(RETRY_AFTER_S))],
            )
        job: _Job[T] = _Job(
            address, user, function, args, asyncio.get_running_loop().create_future()
        )
        self._held[address] += 1
        self._queues.setdefault(address, deque()).append(job)
        self._queued += 1
        self._pump()
        try:
            return await job.future
        except asyncio.CancelledError:
            if not job.started:  # still waiting: drop it unhashed
                queue = self._queues.get(address)
                if queue is not None and job in queue:
                    queue.remove(job)
                    if not queue:
                        del self._queues[address]
                    self._queued -= 1
                    self._release(job)
            raise

    def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        while self._running < self.threads and self._queues:
            address = self._next_address()
            queue = self._queues.pop(address)
            job = queue.popleft()
            if queue:
                self._queues[address] = queue  # to the back of the round
            self._queued -= 1
            job.started = True
            self._running += 1
            self._running_for[job.user] += 1
            done = loop.run_in_executor(self._executor, job.function, *job.args)
            done.add_done_callback(functools.partial(self._finished, job))

    def _next_address(self) -> str:
        """The first address in turn whose next job's user has nothing running, else the first."""
        for address, queue in self._queues.items():
            if self._running_for[queue[0].user] == 0:
                return address
        return next(iter(self._queues))

    def _finished(self, job: _Job[Any], result: asyncio.Future[Any]) -> None:
        self._running -= 1
        self._running_for[job.user] -= 1
        if self._running_for[job.user] <= 0:
            del self._running_for[job.user]
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
        self._held[job.address] -= 1
        if self._held[job.address] <= 0:
            del self._held[job.address]

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
