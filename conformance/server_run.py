"""``python -m conformance server``: wstest's fuzzing client tests the rawws echo server.

Sections 12 and 13 (permessage-deflate) dominate the run time, and one wstest
process runs its cases one after another, so the cases are shared out over
several wstest processes talking to the same server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from conformance.cases import split_cases
from conformance.console import say
from conformance.processes import StartupFailed, free_port, start, stop, substitute, tail, wait_for_tcp
from conformance.session import AGENT, Setup, case_progress, display_command, finish, prepare, watch
from conformance.wstest import python2_env

DEFAULT_SERVER_COMMAND = [
    sys.executable, "-m", "rawws", "serve", "--echo",
    "--host", "127.0.0.1", "--port", "{port}",
    "--max-message-size", str(64 * 1024 * 1024),
    "--data-dir", "{datadir}",
]
SERVER_NAME = "the server under test"


@dataclass(frozen=True)
class ServerRunOptions:
    selection: str
    jobs: int
    server_command: list[str]
    timeout: float
    summary_path: Path
    keep_reports: bool


@dataclass(frozen=True)
class WstestJob:
    """One wstest process with its own share of the cases, spec, report dir and log."""

    name: str
    spec_path: Path
    outdir: Path
    log_path: Path


def run_server_suite(options: ServerRunOptions) -> int:
    """Run the suite against the server and return the exit code (0 pass, 1 conformance failure)."""
    setup = prepare(options.selection, "server")
    port = free_port()
    # The server keeps its (unused here) store and JWT secret in the run's work dir.
    datadir = str(setup.workdir / "rawws-data")
    server_command = substitute(options.server_command, {"port": str(port), "datadir": datadir})
    url = f"ws://127.0.0.1:{port}/echo"
    jobs = _plan_jobs(setup, url, options.jobs)
    server_log = setup.workdir / "server.log"

    say(f"starting the server: {display_command(server_command)} (log {server_log})")
    server = start(server_command, server_log)
    workers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        wait_for_tcp(port, server, SERVER_NAME)
        say(f"server is up at {url}; running {len(setup.suite.cases)} cases in {len(jobs)} wstest process(es)")
        for job in jobs:
            workers[job.name] = start([*setup.wstest.command, "-m", "fuzzingclient", "-s", str(job.spec_path)],
                                      job.log_path, env=python2_env())
        failures = watch(workers, (SERVER_NAME, server), setup.started + options.timeout,
                         progress=case_progress([job.log_path for job in jobs], len(setup.suite.cases)))
    except StartupFailed as error:
        failures = [str(error)]
    finally:
        for name, process in workers.items():
            stop(process, name)
        stop(server, SERVER_NAME)
    _show_failed_logs(jobs, workers, failures, server_log)

    return finish(
        setup, side="server", selection=options.selection, outdirs=[job.outdir for job in jobs],
        summary_path=options.summary_path, failures=failures, keep_reports=options.keep_reports,
        details=[("Server command", f"`{display_command(options.server_command)}`"),
                 ("wstest processes", str(len(jobs)))],
    )


def _show_failed_logs(jobs: list[WstestJob], workers: dict[str, subprocess.Popen[bytes]],
                      failures: list[str], server_log: Path) -> None:
    for job in jobs:
        if job.name in workers and workers[job.name].returncode != 0:
            say(f"{job.name} log ({job.log_path}) ends with:\n{tail(job.log_path)}")
    if any(failure.startswith(SERVER_NAME) for failure in failures):
        say(f"server log ({server_log}) ends with:\n{tail(server_log)}")


def _plan_jobs(setup: Setup, url: str, jobs: int) -> list[WstestJob]:
    """Write one fuzzingclient spec per share of the cases."""
    planned = []
    for number, cases in enumerate(split_cases(setup.suite.cases, jobs), start=1):
        job_dir = setup.workdir / f"wstest-{number}"
        job_dir.mkdir()
        job = WstestJob(name=f"wstest job {number}", spec_path=job_dir / "fuzzingclient.json",
                        outdir=job_dir / "reports", log_path=job_dir / "wstest.log")
        spec = {
            "outdir": str(job.outdir),
            "servers": [{"agent": AGENT, "url": url}],
            "cases": cases,
            "exclude-cases": [],
            "exclude-agent-cases": {},
        }
        job.spec_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
        planned.append(job)
    return planned
