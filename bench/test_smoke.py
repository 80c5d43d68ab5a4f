"""Smoke test for the benchmark harness: `python -m bench --quick` against rawws, rawws-lib and websockets.

Checks that the harness runs end to end and writes RESULTS-style output (the
report, the plots, the raw JSON) — never how fast anything is. Needs the
`bench` extra (websockets, matplotlib; uvloop is not used here). Takes
~30 s on the 2-core machine; run with ``pytest bench/test_smoke.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SERVERS = ("rawws", "rawws-lib", "websockets")
SCENARIOS = ("memory", "echo64", "echo16k", "rtt", "handshakes", "fanout")

pytest.importorskip("matplotlib")
pytest.importorskip("websockets")


def test_quick_run_writes_a_report(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--servers",
            ",".join(SERVERS),
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "round 1 done" in proc.stderr  # the progress display

    report = out.read_text()
    assert report.startswith("# rawws benchmarks")
    assert "python -m bench --quick" in report
    assert (
        "**Machine:**" in report and "**Packages:**" in report and "**Date:**" in report
    )
    for name in SERVERS:
        assert f"`{name}`" in report
    assert "rawws relative to each peer" in report
    assert "fan-out to 50, lock-step" in report and "server CPU per delivery" in report
    assert "server peak RSS in bursts, fan-out to 50" in report
    assert "What limits us now" in report  # LIMITS.md, written by hand
    assert "server CPU per handshake, sequential" in report

    plots = tmp_path / "plots"
    for png in (
        "throughput.png",
        "cpu.png",
        "latency.png",
        "handshakes.png",
        "memory.png",
        "fanout.png",
        "fanout_memory.png",
        "ratios.png",
    ):
        data = (plots / png).read_bytes()
        assert data.startswith(b"\x89PNG"), png
        assert f"plots/{png}" in report

    raw = json.loads((tmp_path / "results.json").read_text())
    seen = {(r["server"], r["scenario"]) for r in raw["results"] if r.get("ok")}
    for name in SERVERS:
        for scenario in SCENARIOS:
            assert (name, scenario) in seen, f"{name} {scenario} did not run"
    fanout = {
        (r["server"], r["receivers"]): r
        for r in raw["results"]
        if r["scenario"] == "fanout"
    }
    for name in SERVERS:
        for n in raw["meta"]["params"]["fanout_receivers"]:
            run = fanout[(name, n)]
            for phase in ("burst", "lockstep"):
                assert run[phase]["deliveries"] == run[phase]["messages"] * n > 0
                assert run[phase]["server_cpu_us_per_delivery"] >= 0
            # the server's peak in bursts is measured from its idle RSS, never below it
            burst = run["burst"]
            assert burst["peak_rss_mb"] >= burst["rss_before_mb"] > 0
    assert not [r for r in raw["results"] if not r.get("ok")]
    # the fan-out runs on a fresh server process of its own: nothing the memory scenario's
    # connections left in the other process can show in its peak RSS
    assert raw["meta"]["own_process"] == ["fanout"]
    for name in SERVERS:
        pids = {
            r["scenario"]: r["server_pid"]
            for r in raw["results"]
            if r["server"] == name
        }
        assert pids["fanout"] != pids["memory"] == pids["echo64"] == pids["handshakes"]
