"""``python -m conformance server``: wstest's fuzzing client tests the rawws echo server.

Sections 12 and 13 (permessage-deflate) dominate the run time, and one wstest
process runs its cases one after another, so the cases are shared out
(``jobs.plan_jobs``) over several wstest processes talking to the same server.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from conformance.console import say
from conformance.jobs import plan_jobs, show_failed_logs
from conformance.processes import stop, substitute
from conformance.session import (
    AGENT,
    case_progress,
    display_command,
    finish,
    prepare,
    watch,
)
from conformance.wstest import python2_env
from testkit import StartupFailed, free_port, start, wait_for_port

DEFAULT_SERVER_COMMAND = [
    sys.executable,
    "-m",
    "rawws",
    "serve",
    "--echo",
    "--host",
    "127.0.0.1",
    "--port",
    "{port}",
    "--max-message-size",
    str(64 * 1024 * 1024),
    "--data-dir",
    "{datadir}",
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


def run_server_suite(options: ServerRunOptions) -> int:
    """Run the suite against the server and return the exit code (0 pass, 1 conformance failure)."""
    setup = prepare(options.selection, "server")
    port = free_port()
    # The server keeps its (unused here) store and JWT secret in the run's work dir.
    datadir = str(setup.workdir / "rawws-data")
    server_command = substitute(
        options.server_command, {"port": str(port), "datadir": datadir}
    )
    url = f"ws://127.0.0.1:{port}/echo"
    jobs = plan_jobs(setup, options.jobs, mode="fuzzingclient", label="wstest job")
    for job in jobs:
        job.write_spec(servers=[{"agent": AGENT, "url": url}])
    server_log = setup.workdir / "server.log"

    say(f"starting the server: {display_command(server_command)} (log {server_log})")
    server = start(server_command, log=server_log, new_session=True)
    workers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        wait_for_port(port, process=server, name=SERVER_NAME)
        say(
            f"server is up at {url}; running {len(setup.suite.cases)} cases in {len(jobs)} wstest process(es)"
        )
        for job in jobs:
            workers[job.name] = start(
                [
                    *setup.wstest.command,
                    "-m",
                    "fuzzingclient",
                    "-s",
                    str(job.spec_path),
                ],
                log=job.log_path,
                env=python2_env(),
                new_session=True,
            )
        failures = watch(
            workers,
            {SERVER_NAME: server},
            setup.started + options.timeout,
            progress=case_progress(
                [job.log_path for job in jobs], len(setup.suite.cases)
            ),
        )
    except StartupFailed as error:
        failures = [str(error)]
    finally:
        for name, process in workers.items():
            stop(process, name)
        stop(server, SERVER_NAME)
    show_failed_logs(
        {
            job.name: (workers[job.name], job.log_path)
            for job in jobs
            if job.name in workers
        },
        {SERVER_NAME: server_log},
        failures,
    )

    return finish(
        setup,
        side="server",
        selection=options.selection,
        outdirs=[job.outdir for job in jobs],
        summary_path=options.summary_path,
        failures=failures,
        keep_reports=options.keep_reports,
        details=[
            ("Server command", f"`{display_command(options.server_command)}`"),
            ("wstest processes", str(len(jobs))),
        ],
    )
