"""Every study still starts: its command imports and shows ``--help``; the overhead study runs.

The studies are run by hand, rarely; what breaks them in between is a change
elsewhere (the harness's client or servers, testkit, rawws's own modules).
Measuring anything is left to their runs. The overhead study, which ``python
-m bench`` used to run as its Part 1, still runs here in ``--quick`` mode,
against rawws's own ``Server``: its write-up, plots and raw JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COMMANDS = [
    "experiments.overhead",
    "experiments.overhead.capture_chromium",
    "experiments.perf.compression",
    "experiments.perf.auth_handshake",
    "experiments.perf.storm",
    "experiments.perf.latency",
    "experiments.perf.plot",
    "experiments.cluster",
    "experiments.cluster.plot",
    "experiments.fanout",
    "experiments.metrics",
    "experiments.profile",
]


@pytest.mark.parametrize("module", COMMANDS)
def test_the_study_shows_its_help(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:"), done.stdout[:200]


def test_the_overhead_study_runs_and_writes_its_report(tmp_path: Path) -> None:
    captured = REPO / "experiments" / "overhead" / "captured" / "chromium.json"
    if not captured.exists() and not shutil.which("chromium"):
        if os.environ.get("CI") == "true":
            pytest.fail("the overhead study needs chromium to capture its requests")
        pytest.skip("no Chromium capture and no chromium to make one")
    out, plots, raw = tmp_path / "OVERHEAD.md", tmp_path / "plots", tmp_path / "s.json"
    done = subprocess.run(
        [sys.executable, "-m", "experiments.overhead", "--quick"]
        + ["--out", str(out), "--plots", str(plots), "--json", str(raw)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = out.read_text()
    assert "# The overhead study: polling vs WebSocket" in report
    assert "Why the numbers differ from the claims" in report
    for png in ("overhead_bytes.png", "overhead_latency.png", "overhead_ratios.png"):
        assert (plots / png).read_bytes().startswith(b"\x89PNG"), png
        assert f"plots/{png}" in report
    study = json.loads(raw.read_text())
    assert study["raw"]["published"] > 0 and not study["raw"]["errors"]
