"""The keepalive schedule both ends share (``rawws.core.keepalive``), driven by a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawws.core.keepalive import KEEPALIVE_FAILURE_CODE, Due, Keepalive
from rawws.server.sweep import MAX_PERIOD_S, MIN_PERIOD_S, sweep_period


def test_first_ping_is_due_one_interval_after_the_start():
    keepalive = Keepalive(20.0, 10.0, now=100.0)
    assert keepalive.next_deadline == 120.0
    assert keepalive.due(119.9, awaiting_pong=False) is Due.NOTHING
    assert keepalive.due(120.0, awaiting_pong=False) is Due.PING


def test_answered_ping_schedules_the_next_one_and_clears_the_deadline():
    keepalive = Keepalive(20.0, 10.0, now=0.0)
    keepalive.ping_sent(20.0)
    assert keepalive.next_deadline == 30.0  # the pong deadline comes first
    assert keepalive.due(25.0, awaiting_pong=True) is Due.NOTHING
    assert (
        keepalive.due(31.0, awaiting_pong=False) is Due.NOTHING
    )  # the pong came: no failure
    assert keepalive.next_deadline == 40.0
    assert keepalive.due(40.0, awaiting_pong=False) is Due.PING


def test_missing_pong_is_overdue_after_the_timeout_and_fails_with_1011():
    keepalive = Keepalive(20.0, 10.0, now=0.0)
    keepalive.ping_sent(20.0)
    assert keepalive.due(29.99, awaiting_pong=True) is Due.NOTHING
    assert keepalive.due(30.0, awaiting_pong=True) is Due.PONG_OVERDUE
    assert KEEPALIVE_FAILURE_CODE == 1011


def test_no_second_ping_while_the_first_waits_for_its_pong():
    """Timeout longer than the interval: the next ping waits for the first pong's verdict."""
    keepalive = Keepalive(5.0, 30.0, now=0.0)
    keepalive.ping_sent(5.0)
    assert keepalive.due(11.0, awaiting_pong=True) is Due.NOTHING
    assert keepalive.due(11.0, awaiting_pong=False) is Due.PING


def test_unread_data_from_the_peer_postpones_the_verdict_by_one_timeout():
    keepalive = Keepalive(20.0, 10.0, now=0.0)
    keepalive.ping_sent(20.0)
    assert keepalive.due(30.0, awaiting_pong=True, peer_alive=True) is Due.NOTHING
    assert keepalive.next_deadline == 40.0
    assert keepalive.due(40.0, awaiting_pong=True) is Due.PONG_OVERDUE


@pytest.mark.parametrize(
    ("interval", "timeout"), [(0, 10.0), (None, 10.0), (-1.0, 10.0)]
)
def test_interval_zero_or_none_means_no_keepalive(interval, timeout):
    keepalive = Keepalive(interval, timeout, now=0.0)
    assert keepalive.next_deadline is None
    assert keepalive.due(1e9, awaiting_pong=False) is Due.NOTHING


def test_timeout_off_pings_without_ever_failing():
    keepalive = Keepalive(1.0, 0, now=0.0)
    keepalive.ping_sent(1.0)
    assert keepalive.due(5.0, awaiting_pong=True) is Due.PING


def test_stop_leaves_nothing_due():
    keepalive = Keepalive(1.0, 1.0, now=0.0)
    keepalive.ping_sent(1.0)
    keepalive.stop()
    assert keepalive.next_deadline is None
    assert keepalive.due(100.0, awaiting_pong=True) is Due.NOTHING


@settings(max_examples=200, deadline=None)
@given(
    interval=st.floats(min_value=0.01, max_value=100),
    timeout=st.floats(min_value=0.01, max_value=100),
    answers=st.lists(st.booleans(), min_size=1, max_size=20),
)
def test_a_peer_that_answers_every_ping_is_never_failed(interval, timeout, answers):
    """Swept at every deadline, a peer that always answers is pinged once per interval and never failed."""
    keepalive = Keepalive(interval, timeout, now=0.0)
    pings = 0
    for answered_late in answers:
        now = keepalive.next_deadline
        assert now is not None
        assert keepalive.due(now, awaiting_pong=False) is Due.PING
        keepalive.ping_sent(now)
        pings += 1
        if answered_late:  # a sweep while the pong is still on its way
            assert keepalive.due(now + timeout / 2, awaiting_pong=True) is Due.NOTHING
        deadline = keepalive.next_deadline
        assert deadline is not None
        assert keepalive.due(deadline, awaiting_pong=False) in (Due.NOTHING, Due.PING)
    assert pings == len(answers)


def test_sweep_period_is_a_quarter_of_the_shortest_timeout_within_bounds():
    assert sweep_period(20.0, 20.0) == MAX_PERIOD_S
    assert sweep_period(0.2, 0.4) == pytest.approx(0.05)
    assert sweep_period(0.001) == MIN_PERIOD_S
    assert sweep_period(0, None) == MAX_PERIOD_S
