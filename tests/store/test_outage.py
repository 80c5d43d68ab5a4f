"""``StoreHealth``: an outage is logged once when it starts and once when it ends, however the store flaps.

The clock is the tracker's own (passed in), so the rules about time are
checked by their numbers, not by sleeping. The errors are SQLAlchemy's own
classes, as a driver raises them. The probes are real coroutines.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.exc import IntegrityError, OperationalError

from rawws.errors import StoreUnavailable
from rawws.server.readiness import NotReady
from rawws.store.outage import FORGET_S, RECOVERY_S, StoreHealth


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def disk_full() -> OperationalError:
    return OperationalError("INSERT INTO users …", {}, Exception("disk I/O error"))


def store_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "rawws.store"]


async def run(health: StoreHealth, operation: str, ok: bool) -> None:
    async def works() -> str:
        return "done"

    async def fails() -> str:
        raise disk_full()

    try:
        await health.call(operation, works() if ok else fails())
    except StoreUnavailable:
        assert not ok


async def test_a_store_flapping_every_100_ms_for_10_s_is_one_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="rawws.store")
    clock = Clock()
    health = StoreHealth(clock)
    for _ in range(50):  # fail, succeed, fail, … for 10 s
        await run(health, "storing messages", ok=False)
        clock.now += 0.1
        await run(health, "storing messages", ok=True)
        clock.now += 0.1
    assert not health.available
    assert len(store_lines(caplog)) == 1
    clock.now += RECOVERY_S - 0.5  # quiet, but not long enough yet
    await run(health, "storing messages", ok=True)
    assert not health.available
    clock.now += 0.5
    await run(health, "storing messages", ok=True)
    assert health.available
    lines = store_lines(caplog)
    assert len(lines) == 2, lines
    assert lines[0].startswith("store unavailable (storing messages failed")
    assert "available again after" in lines[1]
    assert "50 operation(s) refused" in lines[1]


async def test_reads_that_succeed_do_not_end_an_outage_of_writes() -> None:
    """A full disk: the failed write must succeed again (or be forgotten), reads say nothing of it."""
    clock = Clock()
    health = StoreHealth(clock)
    await run(health, "register", ok=False)
    clock.now += RECOVERY_S + 1
    await run(health, "joining", ok=True)
    assert not health.available
    problem = health.problem()
    assert problem is not None and "register (OperationalError)" in problem
    await run(health, "register", ok=True)
    assert health.available
    # An operation nobody tries again holds the outage only so long.
    await run(health, "password", ok=False)
    clock.now += FORGET_S
    await run(health, "joining", ok=True)
    assert health.available


async def test_the_readiness_check_writes_only_during_an_outage() -> None:
    clock = Clock()
    health = StoreHealth(clock)
    writes: list[float] = []

    async def ping() -> None:
        return None

    async def write() -> None:
        writes.append(clock.now)
        if len(writes) == 1:
            raise disk_full()

    await health.check(ping, write)
    assert writes == []  # no outage: SELECT 1 is enough
    await run(health, "storing messages", ok=False)
    with pytest.raises(NotReady, match="readiness probe"):
        await health.check(ping, write)  # the write probe fails: still down
    assert health.refused == 1  # a probe is not a refused operation
    clock.now += 1
    with pytest.raises(NotReady, match="waiting for it to stay up"):
        await health.check(ping, write)  # writes work, but only just
    clock.now += RECOVERY_S
    await health.check(ping, write)
    assert health.available and len(writes) == 3


async def test_a_bug_is_not_an_outage() -> None:
    health = StoreHealth(Clock())

    async def duplicate() -> None:
        raise IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))

    with pytest.raises(IntegrityError):
        await health.call("register", duplicate())
    assert health.available and health.refused == 0


EVENTS = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=8, allow_nan=False),
        st.sampled_from(["storing messages", "register", "joining", "probe"]),
        st.booleans(),
    ),
    max_size=60,
)


@given(EVENTS)
def test_lines_alternate_and_an_outage_ends_only_after_a_quiet_spell(
    events: list[tuple[float, str, bool]],
) -> None:
    """Any sequence of failures and successes: start, end, start, …; no end within RECOVERY_S of a failure."""
    clock = Clock()
    health = StoreHealth(clock)
    last_failure = [clock.now]
    logged: list[str] = []
    quiet_at_end: list[float] = []  # how long since the last failure, at each end line

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno == logging.ERROR:
                logged.append("start")
            else:
                logged.append("end")
                quiet_at_end.append(clock.now - last_failure[0])

    async def ping() -> None:
        return None

    async def write() -> None:
        return None

    async def replay() -> None:
        for step, operation, ok in events:
            clock.now += step
            if operation == "probe":
                try:
                    await health.check(ping, write)
                except NotReady:
                    assert not health.available
                else:
                    assert health.available
                continue
            if not ok:
                last_failure[0] = clock.now
            await run(health, operation, ok)
            if not ok:
                assert not health.available

    handler = Capture()
    logger = logging.getLogger("rawws.store")
    logger.addHandler(handler)
    try:
        asyncio.run(replay())
    finally:
        logger.removeHandler(handler)
    assert logged == ["start", "end"] * (len(logged) // 2) + ["start"] * (
        len(logged) % 2
    )
    assert health.available == (len(logged) % 2 == 0)
    assert all(quiet >= RECOVERY_S for quiet in quiet_at_end)
