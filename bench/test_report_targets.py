"""Issue 25's targets table: each ratio is the median of per-round ratios, with its range and verdict."""

from __future__ import annotations

from bench.harness import PROFILES
from bench.metrics import metrics_for
from bench.report_targets import issue_25_table


def echo_cpu(server: str, rnd: int, us: float) -> dict:
    return {
        "scenario": "echo64",
        "ok": True,
        "server": server,
        "round": rnd,
        "msgs_per_s": 1.0,
        "server_cpu_us_per_msg": us,
    }


def test_the_ratio_is_the_median_of_the_rounds_and_the_verdict_follows_the_bound() -> (
    None
):
    metrics = metrics_for(PROFILES["default"])
    results = [
        echo_cpu("rawws", 1, 9.0),
        echo_cpu("aiohttp", 1, 10.0),  # 0.90
        echo_cpu("rawws", 2, 12.0),
        echo_cpu("aiohttp", 2, 10.0),  # 1.20
        echo_cpu("rawws", 3, 10.5),
        echo_cpu("aiohttp", 3, 10.0),  # 1.05
    ]
    lines = issue_25_table(results, metrics, ["rawws", "aiohttp"])
    (row,) = [line for line in lines if line.startswith("| 5.")]
    assert row.endswith("| ≤ 1× aiohttp | 1.05× [0.90–1.20] | missed |")
    results[2]["server_cpu_us_per_msg"] = 9.5  # round 2 now 0.95: the median is 0.95
    (row,) = [
        line
        for line in issue_25_table(results, metrics, ["rawws", "aiohttp"])
        if line.startswith("| 5.")
    ]
    assert row.endswith("| 0.95× [0.90–1.05] | **met** |")


def test_no_table_when_the_peers_did_not_run() -> None:
    metrics = metrics_for(PROFILES["default"])
    assert issue_25_table([echo_cpu("rawws", 1, 9.0)], metrics, ["rawws"]) == []
