"""The soak's limits family, as CI runs it: a two-worker `rawws serve` on one Redis, a 5 s guessing flood.

Bounded (about 20 s), on 127.0.0.1; the table is printed (-s shows it).
"""

from __future__ import annotations

import os

from soak.limits import run_limits
from soak.run import table


async def test_the_limits_family_holds_across_workers_and_under_a_guessing_flood() -> (
    None
):
    outcome = await run_limits(flood_s=5.0)
    print(table(outcome))
    if os.environ.get("RAWWS_SOAK_TABLE"):
        with open(os.environ["RAWWS_SOAK_TABLE"], "a") as file:
            file.write(table(outcome) + "\n\n")
    assert outcome.failures == []
    ok, tried = str(outcome.figures["victim_logins_ok"]).split("/")
    assert ok == tried and int(tried) > 0
    assert outcome.figures["guesses_refused_429"] > 0  # type: ignore[operator]
    assert outcome.figures["sigterm_exit_code"] == 0
