"""Running the study: start its server, simulate the users, analyse, plot; the result is JSON-ready."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from experiments.overhead.analysis import analyse
from experiments.overhead.capture_chromium import find_chromium, write_capture
from experiments.overhead.common import CAPTURE_DIR, REPO, STUDY_DIR
from experiments.overhead.plots import plots
from experiments.overhead.simulate import simulate
from testkit import free_port, start, stop, wait_for_port

PARAMS = {
    "default": {
        "duration": 40.0,
        "rate": 1.0,
        "interval": 1.0,
        "delay_ms": 50.0,
        "users": 10,
        "ping_interval": 20.0,
        "seed": 1,
    },
    "quick": {
        "duration": 3.0,
        "rate": 5.0,
        "interval": 0.5,
        "delay_ms": 50.0,
        "users": 2,
        "ping_interval": 1.0,
        "seed": 1,
    },
}


def captured(progress=None) -> dict:
    """The capture the study replays (its chromium.json), made first if there is none.

    It is not committed: a capture is a fact about one browser build, and the
    write-up names the build it used. Making one needs a Chromium here.
    """
    meta = CAPTURE_DIR / "chromium.json"
    if not meta.exists():
        chromium = find_chromium()
        if chromium is None:
            raise SystemExit(
                f"no Chromium request bytes in {CAPTURE_DIR} and no chromium to capture"
                " them: install chromium, or run python -m"
                " experiments.overhead.capture_chromium --chromium PATH"
            )
        if progress:
            progress(f"overhead study: capturing {chromium}'s requests first")
        write_capture(chromium)
    return json.loads(meta.read_text())


def run_study(
    *,
    quick: bool = False,
    plots_dir: Path | None = None,
    progress=None,
    command: str | None = None,
    **overrides: float,
) -> dict:
    chromium = captured(progress)
    params = dict(PARAMS["quick" if quick else "default"])
    params.update({k: v for k, v in overrides.items() if v is not None})
    plots_dir = plots_dir or STUDY_DIR / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(
        os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    )
    server = start(
        [
            sys.executable,
            "-m",
            "experiments.overhead",
            "serve",
            "--port",
            str(port),
            "--ping-interval",
            str(params["ping_interval"]),
        ],
        cwd=REPO,
        env=env,
    )
    try:
        wait_for_port(port, process=server, name="the study's server")
        if progress:
            progress(
                f"overhead study: {params['duration']:g} s feed at {params['rate']:g}/s, {params['users']} users × 6 kinds, "
                f"delay {params['delay_ms']:g} ms"
            )
        raw = asyncio.run(
            simulate(
                port,
                users=int(params["users"]),
                duration=params["duration"],
                rate=params["rate"],
                interval=params["interval"],
                delay=params["delay_ms"] / 1000,
                seed=int(params["seed"]),
            )
        )
    finally:
        stop(server)
    study = {
        "command": command
        or ("python -m experiments.overhead" + (" --quick" if quick else "")),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "params": params,
        "chromium": chromium,
        "raw": raw,
    }
    study["analysis"] = analyse(raw, params)
    plots(study, plots_dir)
    if progress:
        sc = study["analysis"]["scenario"]["chromium"]
        progress(
            f"overhead study: headers {sc['ratio_headers']:.0f}:1, with keepalive {sc['ratio_headers_with_keepalive']:.0f}:1, "
            f"with TCP/IP {sc['ratio_wire']:.1f}:1"
        )
    return _jsonable(study)


def _jsonable(obj):
    """Tuple keys → 'a / b' strings, so the study can go into results.json and back."""
    if isinstance(obj, dict):
        return {
            (" / ".join(k) if isinstance(k, tuple) else k): _jsonable(v)
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    return obj
