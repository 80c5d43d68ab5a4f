"""``python -m conformance client``: the rawws client is tested by wstest's fuzzing server.

The fuzzing server only answers; a driver command (the client under test) asks
it for the case count, runs every case (``/runCase?case=N&agent=AGENT``) and
finally asks it to write the reports (``/updateReports?agent=AGENT``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from conformance.console import say
from conformance.processes import StartupFailed, free_port, start, stop, substitute, tail, wait_for_tcp
from conformance.session import AGENT, case_progress, display_command, finish, prepare, watch
from conformance.wstest import python2_env

DEFAULT_CLIENT_COMMAND = [sys.executable, "-m", "conformance.client_driver", "{url}", "{agent}"]
FUZZINGSERVER_SCRIPT = Path(__file__).resolve().parent / "py2" / "fuzzingserver.py"
FUZZER_NAME = "the fuzzing server"
DRIVER_NAME = "the client driver"


@dataclass(frozen=True)
class ClientRunOptions:
    selection: str
    client_command: list[str]
    timeout: float
    summary_path: Path
    keep_reports: bool


def run_client_suite(options: ClientRunOptions) -> int:
    """Run the suite against the client driver and return the exit code (0 pass, 1 conformance failure)."""
    setup = prepare(options.selection, "client")
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    outdir = setup.workdir / "reports"
    spec_path = setup.workdir / "fuzzingserver.json"
    spec = {"url": url, "outdir": str(outdir), "cases": setup.suite.cases,
            "exclude-cases": [], "exclude-agent-cases": {}}
    spec_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    fuzzer_log = setup.workdir / "fuzzingserver.log"
    driver_log = setup.workdir / "client-driver.log"
    driver_command = substitute(options.client_command, {"url": url, "agent": AGENT})

    say(f"starting the fuzzing server on {url} (log {fuzzer_log})")
    fuzzer = start([*setup.wstest.python, str(FUZZINGSERVER_SCRIPT), str(spec_path)], fuzzer_log, env=python2_env())
    driver: subprocess.Popen[bytes] | None = None
    try:
        wait_for_tcp(port, fuzzer, FUZZER_NAME)
        say(f"starting the client driver: {display_command(driver_command)} (log {driver_log})")
        driver = start(driver_command, driver_log)
        failures = watch({DRIVER_NAME: driver}, {FUZZER_NAME: fuzzer}, setup.started + options.timeout,
                         progress=case_progress([fuzzer_log], len(setup.suite.cases)))
    except StartupFailed as error:
        failures = [str(error)]
    finally:
        if driver is not None:
            stop(driver, DRIVER_NAME)
        stop(fuzzer, FUZZER_NAME)
    if driver is not None and driver.returncode != 0:
        say(f"client driver log ({driver_log}) ends with:\n{tail(driver_log)}")
    if any(failure.startswith(FUZZER_NAME) for failure in failures):
        say(f"fuzzing server log ({fuzzer_log}) ends with:\n{tail(fuzzer_log)}")
    if not (outdir / "index.json").exists():
        failures.append("no reports were written: the driver must finish with /updateReports?agent=" + AGENT)

    return finish(
        setup, side="client", selection=options.selection, outdirs=[outdir],
        summary_path=options.summary_path, failures=failures, keep_reports=options.keep_reports,
        details=[("Client driver", f"`{display_command(options.client_command)}`")],
    )
