"""Smoke test for `python -m bench.hot_path --quick`: end to end, against HEAD as the base.

Checks that the side-by-side run materialises a base tree, starts both
servers, measures both figures and writes the report and its raw JSON in the
shape ``bench/HOT_PATH.md`` has — never how fast anything is (a quick run's
counts are far too small for that, and CI machines are noisy). HEAD as the
base keeps it quick and works in any checkout, shallow clones included.
Takes ~10 s; standard library and the dev tools only.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or not (REPO / ".git").exists(),
    reason="needs git and a checkout to materialise the base from",
)


def test_quick_run_against_head_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "HOT_PATH.md"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.hot_path",
            "--base",
            "HEAD",
            "--quick",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "round 1/1 base" in proc.stderr and "round 1/1 new" in proc.stderr

    report = out.read_text()
    assert report.startswith("# The chat's hot path, before and after")
    assert "python -m bench.hot_path --base HEAD --quick" in report
    for label in ("**Date:**", "**Base:**", "**Rounds:** 1", "**Masking:**"):
        assert label in report
    assert "| server CPU per `say` (µs) |" in report
    assert "| server CPU per fan-out delivery (µs) |" in report

    raw = json.loads((tmp_path / "hot_path.json").read_text())
    assert raw["rounds"] == 1
    for side in ("base", "new"):
        (figures,) = raw["results"][side]
        assert set(figures) == {"us_per_say", "us_per_delivery"}
        assert all(value >= 0 and math.isfinite(value) for value in figures.values())
    for key in ("us_per_say", "us_per_delivery"):
        assert len(raw["summary"][key]["ratios"]) == 1

    # --report-only renders the same report again from the raw JSON, measuring nothing
    out.unlink()
    again = subprocess.run(
        [sys.executable, "-m", "bench.hot_path", "--report-only", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert out.read_text() == report
