"""Share the selected cases out over several wstest processes, one share, spec, report dir and log each.

One wstest process runs its cases one after another, and sections 12 and 13
(permessage-deflate) alone take about 13 minutes that way. Both sides therefore
deal the cases out (``cases.split_cases``) over ``--jobs`` wstest processes: the
server run over fuzzing clients sharing one server under test, the client run
over fuzzing servers with one client driver each. ``session.finish`` merges the
jobs' report dirs.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.cases import split_cases
from conformance.console import say
from conformance.processes import tail
from conformance.session import Setup


@dataclass(frozen=True)
class Job:
    """One wstest process with its own share of the cases, spec, report dir and log, all in its own dir."""

    number: int
    name: str
    cases: list[str]
    directory: Path
    spec_path: Path
    outdir: Path
    log_path: Path

    def write_spec(self, **fields: Any) -> None:
        """Write the wstest spec: ``fields`` (the mode's own, such as ``url`` or ``servers``) plus this share."""
        spec = {
            **fields,
            "outdir": str(self.outdir),
            "cases": self.cases,
            "exclude-cases": [],
            "exclude-agent-cases": {},
        }
        self.spec_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")


def plan_jobs(setup: Setup, jobs: int, *, mode: str, label: str) -> list[Job]:
    """Deal the selected cases out over at most ``jobs`` jobs (fewer when there are fewer cases).

    Job N works in ``{workdir}/{mode}-N``, with the spec ``{mode}.json``, the
    reports in ``reports/`` and the log ``{mode}.log``; ``mode`` is wstest's
    (``fuzzingclient`` or ``fuzzingserver``) and ``label`` names the job in
    messages (``wstest job`` gives ``wstest job 1``).
    """
    planned = []
    for number, cases in enumerate(split_cases(setup.suite.cases, jobs), start=1):
        directory = setup.workdir / f"{mode}-{number}"
        directory.mkdir()
        planned.append(
            Job(
                number=number,
                name=f"{label} {number}",
                cases=cases,
                directory=directory,
                spec_path=directory / f"{mode}.json",
                outdir=directory / "reports",
                log_path=directory / f"{mode}.log",
            )
        )
    return planned


def show_failed_logs(
    workers: Mapping[str, tuple[subprocess.Popen[bytes], Path]],
    partners: Mapping[str, Path],
    failures: Sequence[str],
) -> None:
    """Print the end of the log of each worker that exited non-zero and of each partner a failure names.

    ``workers`` are the processes watch() waited for (with their logs);
    ``partners`` are the ones that had to stay up meanwhile, which stop()
    ends with a non-zero code in any case, so only a failure that starts with
    a partner's name shows its log.
    """
    for name, (process, log_path) in workers.items():
        if process.returncode != 0:
            say(f"the log of {name} ({log_path}) ends with:\n{tail(log_path)}")
    for name, log_path in partners.items():
        if any(failure.startswith(name + " ") for failure in failures):
            say(f"the log of {name} ({log_path}) ends with:\n{tail(log_path)}")
