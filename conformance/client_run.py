"""``python -m conformance client``: the rawws client is tested by wstest's fuzzing server.

The fuzzing server only answers; a driver command (the client under test) asks
it for the case count, runs every case (``/runCase?case=N&agent=AGENT``) and
finally asks it to write the reports (``/updateReports?agent=AGENT``).

A fuzzing server runs its cases one after another, so the cases are shared out
(``jobs.plan_jobs``) over several fuzzing servers, each on its own port with
its own client driver. Each one numbers its own share 1..k in ``runCase``; the
reports carry the real case IDs, and the report dirs are merged.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from conformance.console import say
from conformance.jobs import Job, plan_jobs, show_failed_logs
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
from testkit import StartupFailed, free_ports, start, wait_for_port

DEFAULT_CLIENT_COMMAND = [
    sys.executable,
    "-m",
    "conformance.client_driver",
    "{url}",
    "{agent}",
]
FUZZINGSERVER_SCRIPT = Path(__file__).resolve().parent / "py2" / "fuzzingserver.py"


@dataclass(frozen=True)
class ClientRunOptions:
    selection: str
    jobs: int
    client_command: list[str]
    timeout: float
    summary_path: Path
    keep_reports: bool


@dataclass(frozen=True)
class DriverJob:
    """A fuzzing server with its share of the cases, and the client driver that runs them."""

    fuzzer: Job
    port: int
    driver_name: str
    driver_log: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


def run_client_suite(options: ClientRunOptions) -> int:
    """Run the suite against the client driver and return the exit code (0 pass, 1 conformance failure)."""
    setup = prepare(options.selection, "client")
    fuzzer_jobs = plan_jobs(
        setup, options.jobs, mode="fuzzingserver", label="fuzzing server"
    )
    jobs = [
        DriverJob(
            fuzzer=job,
            port=port,
            driver_name=f"client driver {job.number}",
            driver_log=job.directory / "client-driver.log",
        )
        for job, port in zip(fuzzer_jobs, free_ports(len(fuzzer_jobs)), strict=True)
    ]
    for job in jobs:
        job.fuzzer.write_spec(url=job.url)

    fuzzers: dict[str, subprocess.Popen[bytes]] = {}
    drivers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for job in jobs:
            say(
                f"starting {job.fuzzer.name} on {job.url} with {len(job.fuzzer.cases)} cases "
                f"(log {job.fuzzer.log_path})"
            )
            fuzzers[job.fuzzer.name] = start(
                [
                    *setup.wstest.python,
                    str(FUZZINGSERVER_SCRIPT),
                    str(job.fuzzer.spec_path),
                ],
                log=job.fuzzer.log_path,
                env=python2_env(),
                new_session=True,
            )
        for job in jobs:
            wait_for_port(
                job.port, process=fuzzers[job.fuzzer.name], name=job.fuzzer.name
            )
        for job in jobs:
            command = substitute(
                options.client_command, {"url": job.url, "agent": AGENT}
            )
            say(
                f"starting {job.driver_name}: {display_command(command)} (log {job.driver_log})"
            )
            drivers[job.driver_name] = start(
                command, log=job.driver_log, new_session=True
            )
        failures = watch(
            drivers,
            fuzzers,
            setup.started + options.timeout,
            progress=case_progress(
                [job.fuzzer.log_path for job in jobs], len(setup.suite.cases)
            ),
        )
    except StartupFailed as error:
        failures = [str(error)]
    finally:
        for name, process in drivers.items():
            stop(process, name)
        for name, process in fuzzers.items():
            stop(process, name)
    show_failed_logs(
        {
            job.driver_name: (drivers[job.driver_name], job.driver_log)
            for job in jobs
            if job.driver_name in drivers
        },
        {job.fuzzer.name: job.fuzzer.log_path for job in jobs},
        failures,
    )
    for job in jobs:  # a driver that failed is in failures already; one that exited 0 must have asked for reports
        driver = drivers.get(job.driver_name)
        if (
            driver is not None
            and driver.returncode == 0
            and not (job.fuzzer.outdir / "index.json").exists()
        ):
            failures.append(
                f"{job.fuzzer.name} wrote no reports: "
                f"{job.driver_name} must finish with /updateReports?agent={AGENT}"
            )

    return finish(
        setup,
        side="client",
        selection=options.selection,
        outdirs=[job.fuzzer.outdir for job in jobs],
        summary_path=options.summary_path,
        failures=failures,
        keep_reports=options.keep_reports,
        details=[
            ("Client driver", f"`{display_command(options.client_command)}`"),
            ("Fuzzing servers", f"{len(jobs)}, one client driver each"),
        ],
    )
