"""The reliability suite's short profile, as CI runs it: on SQLite, and on PostgreSQL with an outage mid-run.

Bounded: 30 s of load each, on 127.0.0.1, against a real `rawws serve` that is
stopped with SIGTERM and SIGKILL and started again. The table is printed (-s shows it).
"""

from __future__ import annotations

import dataclasses
import os

from soak.profiles import PROFILES
from soak.run import run, table


async def test_the_short_soak_loses_doubles_and_reorders_nothing(
    db_url: str | None,
) -> None:
    """``db_url``: the shared fixture, SQLite and then a fresh PostgreSQL database."""
    chosen = os.environ.get(
        "RAWWS_SOAK_PROFILE", "short"
    )  # `long` for a release run on the fixtures' databases
    profile = (
        PROFILES[chosen]
        if chosen != "short"
        else dataclasses.replace(PROFILES["short"], duration_s=30.0)
    )
    outcome = await run(profile, db_url)
    print(table(outcome))
    if os.environ.get("RAWWS_SOAK_TABLE"):
        with open(os.environ["RAWWS_SOAK_TABLE"], "a") as file:
            file.write(table(outcome) + "\n\n")
    figures = outcome.figures
    assert outcome.failures == []
    assert figures["acked"] > 1000 and figures["deliveries"] > figures["acked"]
    assert (
        figures["lost_acked"],
        figures["duplicated"],
        figures["out_of_order"],
        figures["missed"],
    ) == (0, 0, 0, 0)
    assert figures["server_starts"] == 3 and figures["sigterm_exit_code"] == 0
    assert figures["slow_reader_saw_1008"] or figures["slow_reader_tcp_dropped"]
    if db_url is not None:
        assert (
            figures["refused"] > 0
        )  # `unavailable` answers while the database was away, none of them lost
