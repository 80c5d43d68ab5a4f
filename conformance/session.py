"""What the server run and the client run share: setup, watching children, and the closing summary."""

from __future__ import annotations

import datetime
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from conformance.cases import SuiteInfo, case_patterns, describe_suite
from conformance.console import say
from conformance.reports import load_reports
from conformance.summary import format_duration, is_problem, summarize
from conformance.wstest import Wstest, locate_wstest

AGENT = "rawws"
PROGRESS_EVERY = 30.0  # seconds between progress lines, so CI shows the run is alive
CASE_STARTED = b"Running test case ID"  # what wstest logs as each case begins
PLAIN_ARGUMENT = re.compile(
    r"[\w@%+=:,./{}-]+"
)  # shown unquoted, so placeholders read as {port}
SECRET_FLAG = re.compile(
    r"(password|passwd|secret|token|credential|api[-_]?key)", re.IGNORECASE
)

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_SETUP_ERROR = 2


@dataclass(frozen=True)
class Setup:
    """Everything a run needs before it starts its processes."""

    wstest: Wstest
    suite: SuiteInfo
    workdir: Path
    started: float
    started_at: datetime.datetime


def prepare(selection: str, side: str) -> Setup:
    """Install/locate wstest, resolve the case selection, and make a work dir for specs, logs and reports."""
    started_at = datetime.datetime.now(datetime.UTC)
    patterns = case_patterns(selection)  # before any install, so a typo fails at once
    wstest = locate_wstest()
    suite = describe_suite(wstest, patterns)
    workdir = Path(tempfile.mkdtemp(prefix=f"rawws-conformance-{side}-"))
    say(f"{len(suite.cases)} cases selected by --cases {selection}; work dir {workdir}")
    return Setup(
        wstest=wstest,
        suite=suite,
        workdir=workdir,
        started=time.monotonic(),
        started_at=started_at,
    )


def case_progress(logs: Sequence[Path], total: int) -> Callable[[], str]:
    """A progress reporter for watch(): how many of ``total`` cases wstest has begun, read from its logs."""

    def report() -> str:
        started = sum(
            log.read_bytes().count(CASE_STARTED) for log in logs if log.exists()
        )
        return f"{started}/{total} cases started"

    return report


def watch(
    workers: Mapping[str, subprocess.Popen[bytes]],
    partners: Mapping[str, subprocess.Popen[bytes]],
    deadline: float,
    progress: Callable[[], str],
) -> list[str]:
    """Wait until every worker exits; give up early if a partner (a process the workers need) dies or time runs out.

    Returns what went wrong, for the summary. The caller stops whatever still runs.
    """
    began = time.monotonic()
    next_progress = began + PROGRESS_EVERY
    while any(process.poll() is None for process in workers.values()):
        dead = _dead_partners(partners)
        if dead:
            return dead
        now = time.monotonic()
        if now >= deadline:
            unfinished = ", ".join(
                name for name, process in workers.items() if process.poll() is None
            )
            return [f"the run hit its time limit; stopped {unfinished}"]
        if now >= next_progress:
            minutes, seconds = divmod(int(now - began), 60)
            say(f"[{minutes}:{seconds:02d}] {progress()}")
            next_progress = now + PROGRESS_EVERY
        time.sleep(0.5)
    failures = [
        f"{name} exited with code {process.returncode}"
        for name, process in workers.items()
        if process.returncode != 0
    ]
    return failures + _dead_partners(partners)


def _dead_partners(partners: Mapping[str, subprocess.Popen[bytes]]) -> list[str]:
    return [
        f"{name} exited with code {process.returncode} during the run"
        for name, process in partners.items()
        if process.poll() is not None
    ]


def display_command(command: Sequence[str]) -> str:
    """The command as the summary shows it: this interpreter as ``python``, values of secret-looking flags hidden."""
    shown: list[str] = []
    hide_next = False
    for argument in command:
        if hide_next:
            shown.append("***")
            hide_next = False
        elif argument == sys.executable:
            shown.append("python")
        elif SECRET_FLAG.search(argument) and "=" in argument:
            shown.append(argument.split("=", 1)[0] + "=***")
        else:
            shown.append(argument)
            hide_next = argument.startswith("-") and bool(SECRET_FLAG.search(argument))
    return " ".join(
        arg if PLAIN_ARGUMENT.fullmatch(arg) else shlex.quote(arg) for arg in shown
    )


def closing_line(side: str, results: dict[str, dict], expected: int) -> str:
    """The plain ``N passed, N failed`` line CI reads; a case that did not run counts as failed."""
    passed = sum(1 for entry in results.values() if not is_problem(entry))
    return f"conformance-{side}: {passed} passed, {expected - passed} failed"


def finish(
    setup: Setup,
    *,
    side: str,
    selection: str,
    outdirs: Sequence[Path],
    summary_path: Path,
    details: Sequence[tuple[str, str]],
    failures: Sequence[str],
    keep_reports: bool,
) -> int:
    """Summarize the reports, write and print the summary, and return the exit code.

    The work dir goes when the run passed (unless ``keep_reports``); a failed run keeps it for inspection.
    """
    index = load_reports(outdirs)
    elapsed = time.monotonic() - setup.started
    suite = setup.suite
    header = [
        ("Date", setup.started_at.strftime("%Y-%m-%d %H:%M UTC")),
        (
            "wstest",
            f"autobahntestsuite {suite.testsuite_version} (autobahn {suite.autobahn_version}) "
            f"on Python {suite.python_version}",
        ),
        ("Python", sys.version.split()[0]),
        *details,
        ("Case selection", f"`--cases {selection}`"),
        ("Wall time", format_duration(elapsed)),
    ]
    summary = summarize(
        index,
        agent=AGENT,
        expected_cases=suite.cases,
        title=f"rawws {side} conformance (Autobahn TestSuite)",
        header=header,
        section_names=suite.section_names,
        extra_failures=failures,
    )
    summary_path.write_text(summary.markdown, encoding="utf-8")
    print(summary.markdown, flush=True)
    say(f"summary written to {summary_path}")
    print(closing_line(side, index.get(AGENT, {}), len(suite.cases)), flush=True)
    if summary.passed and not keep_reports:
        shutil.rmtree(setup.workdir, ignore_errors=True)
        say(f"passed; removed the work dir {setup.workdir} (--keep-reports keeps it)")
        return EXIT_PASSED
    say(f"specs, logs and raw reports kept in {setup.workdir}")
    for outdir in outdirs:
        if (outdir / "index.json").exists():
            say(f"reports (index.json, per-case JSON and HTML): {outdir}")
    return EXIT_PASSED if summary.passed else EXIT_FAILED
