"""Every study still starts: its command imports and shows ``--help``; the overhead study runs.

The studies are run by hand, rarely; what breaks them in between is a change
elsewhere (the harness's client or servers, testkit, rawws's own modules).
Measuring anything is left to their runs. The overhead study, which ``python
-m bench`` used to run as its Part 1, still runs here in ``--quick`` mode,
against rawws's own ``Server``: its write-up, plots and raw JSON; so do its
two runs on the product (``rawws serve``'s /ws, /sse and /poll): the bytes
and latency of one feed, and what a session costs the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.perfkit import PASSWORD
from experiments.scale.room import Load, Node, send
from testkit import chat_token

REPO = Path(__file__).resolve().parent.parent
COMMANDS = [
    "experiments.overhead",
    "experiments.overhead.capture_chromium",
    "experiments.overhead.product",
    "experiments.overhead.sessions",
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
    "experiments.scale",
    "experiments.scale.members",
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


def test_the_product_study_reads_every_line_on_every_transport(tmp_path: Path) -> None:
    out, plots, raw = tmp_path / "OVERHEAD.md", tmp_path / "plots", tmp_path / "p.json"
    results = tmp_path / "RESULTS.md"
    out.write_text(
        "# The overhead study: polling vs WebSocket\n\nthe study's own page\n"
    )
    results.write_text("# rawws benchmarks\n")
    done = subprocess.run(
        [sys.executable, "-m", "experiments.overhead.product", "--quick"]
        + ["--out", str(out), "--plots", str(plots), "--json", str(raw)]
        + ["--results", str(results)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    page = out.read_text()
    assert page.startswith(
        "# The overhead study: polling vs WebSocket\n\nthe study's own page\n"
    )
    assert "## On the product: `/ws`, `/sse` and `/poll` of `rawws serve`" in page
    for png in ("product_bytes.png", "product_latency.png"):
        assert (plots / png).read_bytes().startswith(b"\x89PNG"), png
        assert f"plots/{png}" in page
    summary = results.read_text()
    assert summary.startswith("# rawws benchmarks\n")
    assert "Transports on the product: bytes and latency" in summary
    study = json.loads(raw.read_text())
    assert study["raw"]["published"] > 0 and not study["raw"]["errors"]
    for group in study["raw"]["groups"]:
        assert group["missing"] == 0 and group["duplicates"] == 0, group["method"]
        assert group["bytes"]["payload"] > 0, group["method"]


def test_the_sessions_study_measures_every_transport(tmp_path: Path) -> None:
    page, results, raw = (
        tmp_path / "SESSIONS.md",
        tmp_path / "RESULTS.md",
        tmp_path / "s.json",
    )
    done = subprocess.run(
        [sys.executable, "-m", "experiments.overhead.sessions", "--quick"]
        + ["--write", str(page), "--results", str(results), "--json", str(raw)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SSE `/sse`" in page.read_text() and "long poll `/poll`" in page.read_text()
    assert "what a session costs the server" in results.read_text()
    (round_,) = json.loads(raw.read_text())["rounds"]
    for kind in ("WebSocket", "SSE", "long polling"):
        assert round_[kind]["lockstep"]["deliveries"] > 0, kind
        assert round_[kind]["rss_kib"] > round_[kind]["baseline_kib"], kind


def _needs(binary: str, why: str) -> None:
    """Skip without ``binary``, except under CI, where it is a failure."""
    if not shutil.which(binary):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{binary} is required under CI: {why}")
        pytest.skip(f"{binary} not installed")


@pytest.mark.parametrize("client", ["c", "python"])
def test_the_scale_study_counts_every_delivery_across_workers_and_load_processes(
    tmp_path: Path, client: str
) -> None:
    """Two workers sharing the room through a real redis-server, three load processes of either
    kind: every member has every message once, in order, and the figures the study reports are
    there."""
    _needs("redis-server", "the workers' bus")
    if client == "c":
        _needs("gcc", "the scale study's C load process")
    out = tmp_path / "scale.json"
    done = subprocess.run(
        [sys.executable, "-m", "experiments.scale", "big", "--members", "60",
         "--workers", "2", "--per-process", "20", "--messages", "4",
         "--interval", "0.2", "--client", client, "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(out.read_text())
    assert (result["members"], result["load_processes"], result["workers"]) == (
        60,
        3,
        2,
    )
    assert result["client"] == client
    assert result["deliveries"] == 60 * 4
    assert (result["lost"], result["out_of_order"], result["members_short"]) == (
        0,
        0,
        0,
    )
    assert result["last_member_p99_ms"] >= result["last_member_p50_ms"] > 0
    assert (
        result["client_cpu_us_per_delivery"] > 0 < result["server_cpu_us_per_delivery"]
    )


def test_the_c_load_process_reports_what_the_python_one_reports() -> None:
    """One room, a load process of each kind side by side: the same report fields, every message
    once and in order for both, latencies on the sender's clock, and a ``count`` that agrees."""
    _needs("gcc", "the scale study's C load process")
    node = Node(workers=1).start()
    loads: dict[str, Load] = {}
    try:
        token = chat_token(node.port, "bench", PASSWORD)
        for client in ("c", "python"):
            loads[client] = Load(node.port, token, 7, 7, client)
        assert [load.wait_ready() for load in loads.values()] == [7, 7]
        for load in loads.values():
            load.say("start")
        asyncio.run(send(node.port, token, 1, 20.0, 5))
        for load in loads.values():
            load.wait_received(7 * 5, 60)
            assert load.received() == 7 * 5
        reports = {client: load.reports()[0] for client, load in loads.items()}
    finally:
        for load in loads.values():
            load.kill()
        node.stop()
    assert reports["c"].keys() == reports["python"].keys()
    for client, report in reports.items():
        assert (report["members"], report["counts"], report["received"]) == (
            7,
            [5],
            35,
        ), client
        assert (report["out_of_order"], report["retries"]) == (0, 0), client
        assert sorted(report["last_arrival_ms"]) == ["1", "2", "3", "4", "5"], client
        assert len(report["latencies_ms"]) == 35, client
        assert all(0 < ms < 60_000 for ms in report["latencies_ms"]), client
        assert max(report["latencies_ms"]) == max(report["last_arrival_ms"].values())
        assert report["cpu_s"] >= 0, client
