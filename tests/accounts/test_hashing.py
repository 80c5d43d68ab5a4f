"""Password hashing has one bounded queue with fair shares per address and per target user.

Found from outside: one address's 30 allowed bad logins pushed a legitimate
login from 0.33 s to 10.5 s, and about six addresses kept the two argon2
threads busy for good. The route tests run the real ``/auth/login`` handler on a
real SQLite store with argon2id at its real cost (64 MiB, 3 passes), so a hash
outlasts the moment it takes every request of a flood to reach the queue; the
queue tests use real threads held by ``threading.Event``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rawws.accounts.hashing import PER_ADDRESS, WAITING, FairHashing
from rawws.accounts.passwords import Passwords
from rawws.accounts.routes import Accounts
from rawws.accounts.tokens import Tokens, TokenSettings
from rawws.core.http import Request
from rawws.errors import HttpError
from rawws.store import open_store, sqlite_url

PASSWORD = "correct horse battery"


# -- the queue ----------------------------------------------------------------------


class Gate:
    """A job that blocks its thread until opened, recording the order jobs ran in."""

    def __init__(self, ran: list[str]) -> None:
        self.ran = ran
        self.open = threading.Event()

    def __call__(self, name: str) -> str:
        self.ran.append(name)
        assert self.open.wait(30)
        return name


async def started(hashing: FairHashing, running: int) -> None:
    while hashing.running < running:
        await asyncio.sleep(0.001)


async def test_waiting_jobs_are_served_round_robin_by_address() -> None:
    hashing = FairHashing(1, per_address=10, waiting=10)
    ran: list[str] = []
    gate = Gate(ran)
    try:
        jobs = [
            asyncio.create_task(hashing.run("a", f"u{n}", gate, f"a{n}"))
            for n in range(4)
        ]
        await started(hashing, 1)
        jobs.append(asyncio.create_task(hashing.run("b", "victim", gate, "b0")))
        await asyncio.sleep(0)
        gate.open.set()
        assert await asyncio.gather(*jobs) == ["a0", "a1", "a2", "a3", "b0"]
        assert ran == ["a0", "a1", "b0", "a2", "a3"]  # b waited for one of a's, not all
    finally:
        gate.open.set()
        hashing.close()


async def test_past_an_address_share_429_and_past_the_queue_503_before_anything_runs() -> (
    None
):
    hashing = FairHashing(1, per_address=2, waiting=3)
    ran: list[str] = []
    gate = Gate(ran)
    try:
        jobs = [asyncio.create_task(hashing.run("a", "u1", gate, "a0"))]
        await started(hashing, 1)
        jobs.append(asyncio.create_task(hashing.run("a", "u2", gate, "a1")))
        await asyncio.sleep(0)
        with pytest.raises(HttpError) as address_full:
            await hashing.run("a", "u3", gate, "a2")  # a's share: 2
        jobs += [
            asyncio.create_task(hashing.run(f"c{n}", "u1", gate, f"c{n}"))
            for n in range(2)
        ]  # a user's share is not refused: that would lock its owner out
        await asyncio.sleep(0)
        with pytest.raises(HttpError) as queue_full:
            await hashing.run("d", "w", gate, "d0")
        assert address_full.value.status == 429
        assert ("Retry-After", "1") in address_full.value.headers
        assert queue_full.value.status == 503
        assert ("Retry-After", "1") in queue_full.value.headers
        gate.open.set()
        await asyncio.gather(*jobs)
        assert sorted(ran) == ["a0", "a1", "c0", "c1"]
    finally:
        gate.open.set()
        hashing.close()


class Gates:
    """Jobs that each block their thread until their own gate opens."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.gates: dict[str, threading.Event] = {}

    def __call__(self, name: str) -> str:
        self.ran.append(name)
        assert self.gates.setdefault(name, threading.Event()).wait(30)
        return name

    def open(self, name: str) -> None:
        self.gates.setdefault(name, threading.Event()).set()

    def open_all(self) -> None:
        for name in ("a0", "b0", "a1", "c0", "d0"):
            self.open(name)


async def test_guesses_at_one_user_never_hold_both_threads_while_others_wait() -> None:
    hashing = FairHashing(2, per_address=10, waiting=10)
    gates = Gates()
    try:
        jobs = [
            asyncio.create_task(hashing.run("a", "target", gates, "a0")),
            asyncio.create_task(hashing.run("b", "bystander", gates, "b0")),
        ]
        await started(hashing, 2)
        jobs += [
            asyncio.create_task(hashing.run("a", "target", gates, "a1")),
            asyncio.create_task(hashing.run("c", "target", gates, "c0")),
            asyncio.create_task(hashing.run("d", "victim", gates, "d0")),
        ]
        await asyncio.sleep(0)
        gates.open("b0")  # a thread frees while "target" still has a0 running
        while len(gates.ran) < 3:
            await asyncio.sleep(0.001)
        assert gates.ran == ["a0", "b0", "d0"]  # d waited for no guess at "target"
        # One thread frees at a time, so the order below is the scheduler's, not a
        # race between two threads starting: with only "target" waiting, it may
        # hold both threads, and a's turn comes before c's.
        gates.open("d0")
        while len(gates.ran) < 4:
            await asyncio.sleep(0.001)
        assert gates.ran[3:] == ["a1"]
        gates.open_all()
        await asyncio.gather(*jobs)
        assert gates.ran[3:] == ["a1", "c0"]
    finally:
        gates.open_all()
        hashing.close()


async def test_a_waiting_job_whose_request_went_away_never_runs() -> None:
    hashing = FairHashing(1, per_address=10, waiting=10)
    ran: list[str] = []
    gate = Gate(ran)
    try:
        first = asyncio.create_task(hashing.run("a", "u", gate, "first"))
        await started(hashing, 1)
        gone = asyncio.create_task(hashing.run("b", "v", gate, "gone"))
        await asyncio.sleep(0)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert hashing.queued == 0
        gate.open.set()
        await first
        assert ran == ["first"]
    finally:
        gate.open.set()
        hashing.close()


# -- the route, at argon2's real cost --------------------------------------------------


@pytest.fixture
async def accounts(tmp_path: Path) -> AsyncIterator[Accounts]:
    store = await open_store(sqlite_url(tmp_path / "data"))
    accounts = Accounts(
        store,
        Passwords(),  # the real cost: a hash takes far longer than a flood takes to queue
        Tokens(TokenSettings(secret=b"s" * 32)),
        logins_per_user=10**6,
        logins_per_address=10**6,
    )
    await store.create_user("victim", accounts.passwords.hash(PASSWORD))
    try:
        yield accounts
    finally:
        accounts.close()
        await store.close()


async def login(accounts: Accounts, user: str, password: str, peer: str) -> int:
    request = Request(
        method="POST",
        path="/auth/login",
        query="",
        headers=[(b"content-type", b"application/json")],
        body=json.dumps({"username": user, "password": password}).encode(),
        peer=f"{peer}:4000",
    )
    try:
        return (await accounts.login(request)).status
    except HttpError as error:
        return error.status


async def test_one_address_flooding_gets_its_share_and_the_victim_gets_in(
    accounts: Accounts,
) -> None:
    flood = [
        asyncio.create_task(login(accounts, f"nobody{n}", "wrong-guess", "192.0.2.1"))
        for n in range(12)
    ]
    await asyncio.sleep(0.05)
    victim = await login(accounts, "victim", PASSWORD, "198.51.100.7")
    answers = Counter(await asyncio.gather(*flood))
    assert victim == 200
    assert answers == {
        401: PER_ADDRESS,
        429: 12 - PER_ADDRESS,
    }  # the rest refused unhashed


async def test_many_addresses_flooding_fill_the_queue_then_get_503(
    accounts: Accounts,
) -> None:
    count = 2 + WAITING + 6
    flood = [
        asyncio.create_task(login(accounts, f"nobody{n}", "wrong-guess", f"10.0.0.{n}"))
        for n in range(count)
    ]
    answers = Counter(await asyncio.gather(*flood))
    assert answers == {401: 2 + WAITING, 503: 6}
