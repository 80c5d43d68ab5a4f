"""``StopBook`` and the token issue times it judges, with no I/O: a fake store, a fake clock."""

from __future__ import annotations

import pytest

from rawws.accounts.stops import DISABLED, OVERLAP_S, SIGNED_OUT, StopBook
from rawws.accounts.tokens import ACCESS, TICKET, Tokens, TokenSettings
from rawws.errors import AuthError
from rawws.store.base import Stamp

SECRET = b"stop-book-test-secret-0123456789abcdef"
NOW = 1_700_000_000.0
HORIZON_S = 905.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeStore:
    """``stamps_since`` over a list; ``down`` makes it fail as an unreachable database does."""

    def __init__(self) -> None:
        self.stamps: list[Stamp] = []
        self.asked: list[float] = []
        self.down = False

    async def stamps_since(self, since: float) -> list[Stamp]:
        self.asked.append(since)
        if self.down:
            raise OSError("connection refused")
        return [stamp for stamp in self.stamps if stamp.not_before > since]


def book(store: FakeStore, clock: Clock) -> StopBook:
    return StopBook(store, HORIZON_S, clock=clock)  # type: ignore[arg-type]


def test_a_token_from_the_same_second_is_judged_by_its_millisecond() -> None:
    clock = Clock(NOW + 0.400)
    tokens = Tokens(TokenSettings(secret=SECRET), clock=clock)
    before, _ = tokens.issue("Ada")
    clock.now = NOW + 0.900
    after, _ = tokens.issue("Ada")
    stops = book(FakeStore(), clock)
    stops.note(Stamp("ada", NOW + 0.650, False))  # logout between the two, same second
    assert stops.stopped(tokens.verify(before)) == SIGNED_OUT
    assert stops.stopped(tokens.verify(after)) is None
    with pytest.raises(AuthError) as refused:
        stops.check(tokens.verify(before))
    assert refused.value.status == 401


def test_a_ticket_is_judged_by_the_access_token_that_bought_it() -> None:
    clock = Clock(NOW)
    tokens = Tokens(TokenSettings(secret=SECRET), clock=clock)
    _, access = tokens.issue("Ada", ACCESS)
    clock.now = NOW + 2.0
    ticket, _ = tokens.issue(
        "Ada",
        TICKET,
        session_expires_at=access.expires_at,
        session_issued_at=access.issued_at,
    )
    stops = book(FakeStore(), clock)
    stops.note(
        Stamp("ada", NOW + 1.0, False)
    )  # after the access token, before the ticket
    assert stops.stopped(tokens.verify(ticket, TICKET)) == SIGNED_OUT


def test_a_disabled_account_refuses_every_token_and_listeners_hear_each_stamp_once() -> (
    None
):
    clock = Clock(NOW + 10)
    tokens = Tokens(TokenSettings(secret=SECRET), clock=clock)
    heard: list[Stamp] = []
    stops = book(FakeStore(), clock)
    stops.listeners.append(heard.append)
    stops.note(Stamp("ada", NOW, True))
    stops.note(Stamp("ada", NOW, True))  # the poll reads it again: not news
    stops.note(Stamp("ada", NOW - 5, False))  # older: never moves a stamp back
    assert stops.stopped(tokens.verify(tokens.issue("ADA")[0])) == DISABLED
    stops.note(Stamp("ada", NOW + 1, False))  # enabled (enable stamps too)
    assert stops.stopped(tokens.verify(tokens.issue("Ada")[0])) is None
    assert heard == [Stamp("ada", NOW, True), Stamp("ada", NOW + 1, False)]


async def test_the_poll_reads_back_a_little_and_forgets_what_can_stop_nothing() -> None:
    store, clock = FakeStore(), Clock()
    stops = book(store, clock)
    store.stamps = [Stamp(f"u{i}", NOW - 10 + i, False) for i in range(5)]
    await stops.start()
    try:
        assert store.asked == [
            NOW - HORIZON_S
        ]  # at start: whatever can still stop a token
        assert len(stops) == 5
        clock.now += 1.0
        await stops.poll()
        assert store.asked[-1] == NOW - OVERLAP_S
        clock.now = NOW + HORIZON_S + 1  # every stamp is older than any live token
        await stops.poll()
        assert len(stops) == 0  # bounded: only the stamps of the last horizon are kept
    finally:
        await stops.close()


async def test_an_unreachable_store_keeps_what_is_known() -> None:
    store, clock = FakeStore(), Clock()
    stops = book(store, clock)
    store.stamps = [Stamp("ada", NOW - 1, True)]
    await stops.poll()
    store.down = True
    clock.now += 1
    await stops.poll()  # logged once by the store's health, never raised
    assert len(stops) == 1
    since = store.asked[-1]
    store.down = False
    store.stamps.append(Stamp("bob", NOW + 0.5, False))
    await stops.poll()
    assert store.asked[-1] == since  # the missed stretch is read again
    assert len(stops) == 2
