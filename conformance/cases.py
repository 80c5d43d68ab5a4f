"""Turn a ``--cases`` argument into the exact case IDs wstest will run, and share them out over jobs."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from conformance.wstest import Wstest, python2_env

DEFAULT_CASES = "1-13"
SUITE_INFO_SCRIPT = Path(__file__).resolve().parent / "py2" / "suite_info.py"


class BadCaseSelection(ValueError):
    """The ``--cases`` argument names no valid case or pattern."""


@dataclass(frozen=True)
class SuiteInfo:
    """Versions of the installed suite, its section names and the resolved case IDs in suite order."""

    testsuite_version: str
    autobahn_version: str
    python_version: str
    section_names: dict[str, str]
    cases: list[str]


def case_patterns(selection: str) -> list[str]:
    """Expand ``1-13``, ``5``, ``1.*`` or ``6.4.1`` (comma separated) into wstest spec patterns.

    A bare number or a range of numbers means whole top-level sections.
    """
    patterns: list[str] = []
    for item in (part.strip() for part in selection.split(",")):
        if not item:
            continue
        section_range = re.fullmatch(r"(\d+)-(\d+)", item)
        if section_range:
            first, last = int(section_range[1]), int(section_range[2])
            if first > last:
                raise BadCaseSelection(f"empty section range {item!r}")
            patterns.extend(f"{section}.*" for section in range(first, last + 1))
        elif re.fullmatch(r"\d+", item):
            patterns.append(f"{item}.*")
        elif re.fullmatch(r"\d+(\.(\d+|\*))*(\.\*)?|\*", item):
            patterns.append(item)
        else:
            raise BadCaseSelection(f"not a case ID, pattern or section range: {item!r}")
    if not patterns:
        raise BadCaseSelection(f"no cases in {selection!r}")
    return patterns


def describe_suite(wstest: Wstest, patterns: list[str]) -> SuiteInfo:
    """Ask the suite itself (on Python 2.7) which cases the patterns select."""
    result = subprocess.run(
        [*wstest.python, str(SUITE_INFO_SCRIPT), *patterns],
        capture_output=True,
        text=True,
        check=False,
        env=python2_env(),
    )
    if result.returncode != 0:
        raise BadCaseSelection(
            f"the test suite rejected {patterns}: {result.stderr.strip()}"
        )
    info = json.loads(result.stdout)
    if not info["cases"]:
        raise BadCaseSelection(f"no test case matches {patterns}")
    return SuiteInfo(
        testsuite_version=info["testsuite"],
        autobahn_version=info["autobahn"],
        python_version=info["python"],
        section_names=info["sections"],
        cases=info["cases"],
    )


def split_cases(cases: list[str], jobs: int) -> list[list[str]]:
    """Deal the cases out in snake order (jobs 1 2 2 1 1 2 ...) so the jobs finish together.

    Neighbouring cases cost about the same, except that within a group the cost
    grows with the last number (12.1.1 to 12.1.18 send ever bigger messages);
    plain round-robin would hand the larger case of every pair to the same job.
    """
    shares: list[list[str]] = [[] for _ in range(jobs)]
    for position, case in enumerate(cases):
        lap, seat = divmod(position, jobs)
        shares[seat if lap % 2 == 0 else jobs - 1 - seat].append(case)
    return [share for share in shares if share]
