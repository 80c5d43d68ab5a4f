"""The soak's "forged bus events" family, as CI runs it: 10 s, two real nodes, a real Redis with a
password, a forger publishing and replaying on the channel the whole time (``soak.bus_forgery``)."""

from __future__ import annotations

import os
import shutil

import pytest

from soak.bus_forgery import run_bus_forgery, table


async def test_no_forged_bus_event_is_delivered() -> None:
    if shutil.which("redis-server") is None and os.environ.get("CI") != "true":
        pytest.skip("redis-server not installed")
    outcome = await run_bus_forgery(10.0)
    print(table(outcome))
    figures = outcome.figures
    assert outcome.failures == [], table(outcome)
    assert figures["forged_published"] > 100 and figures["replayed"] > 100
    assert (figures["forged_delivered"], figures["fake_users_seen"]) == (0, 0)
    assert figures["acked"] > 10 and figures["wrong_text"] == 0
