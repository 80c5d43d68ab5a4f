"""Every study still starts: its command imports and shows ``--help``.

The studies are run by hand, rarely; what breaks them in between is a change
elsewhere (the harness's client or servers, testkit, rawws's own modules).
Measuring anything is left to their runs.
"""

from __future__ import annotations

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
