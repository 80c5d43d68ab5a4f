"""Turn an Autobahn TestSuite report index into a Markdown summary and a pass/fail verdict.

Pure (no I/O), so tests can feed it hand-made indexes. An index has the shape of
wstest's ``index.json``: ``{agent: {case_id: entry}}``, where an entry holds at
least ``behavior`` and ``behaviorClose``, usually ``duration`` (ms), and, for the
cases worth explaining, ``description``, ``result`` and ``resultClose`` copied in
from the per-case report.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CaseEntry = Mapping[str, Any]
ReportIndex = Mapping[str, Mapping[str, CaseEntry]]

BEHAVIOR_COLUMNS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
ACCEPTED = frozenset({"OK", "INFORMATIONAL"})


@dataclass(frozen=True)
class Summary:
    """The Markdown text, the verdict, and why it failed (empty when it passed)."""

    markdown: str
    passed: bool
    reasons: tuple[str, ...]


def is_problem(entry: CaseEntry) -> bool:
    """A case needs attention unless both its behavior and its close behavior are OK or INFORMATIONAL."""
    return (
        entry.get("behavior") not in ACCEPTED
        or entry.get("behaviorClose") not in ACCEPTED
    )


def case_sort_key(case_id: str) -> tuple[int, ...]:
    """Numeric order, so 2.10 comes after 2.9."""
    return tuple(int(part) for part in case_id.split("."))


def summarize(
    index: ReportIndex,
    *,
    agent: str,
    expected_cases: Sequence[str],
    title: str,
    header: Sequence[tuple[str, str]] = (),
    section_names: Mapping[str, str] | None = None,
    extra_failures: Sequence[str] = (),
) -> Summary:
    """Build the summary for ``agent``.

    It fails on any case that is not OK/INFORMATIONAL (behavior or close), on any
    expected case missing from the index, and on each of ``extra_failures``
    (things the caller saw, such as the server dying).
    """
    results = dict(index.get(agent, {}))
    problems = sorted(
        (case for case, entry in results.items() if is_problem(entry)),
        key=case_sort_key,
    )
    missing = [case for case in expected_cases if case not in results]

    reasons = list(extra_failures)
    if problems:
        reasons.append(f"{len(problems)} case(s) not OK/INFORMATIONAL")
    if missing:
        reasons.append(
            f"{len(missing)} of {len(expected_cases)} requested case(s) did not run"
        )
    passed = not reasons

    lines = [f"# {title}", ""]
    lines += [f"- {label}: {value}" for label, value in header]
    lines += [
        f"- Cases: {len(expected_cases)} requested, {len(results)} ran",
        f"- Sum of per-case durations: {_format_ms(sum(_duration(e) for e in results.values()))}",
        "",
        "**Verdict: PASS**" if passed else f"**Verdict: FAIL** ({'; '.join(reasons)})",
        "",
    ]
    lines += _section_table(results, expected_cases, section_names or {})
    lines += ["", "## Cases that are not OK/INFORMATIONAL", ""]
    lines += _problem_table(results, problems) if problems else ["None."]
    if missing:
        lines += ["", "## Requested cases that did not run", "", ", ".join(missing)]
    return Summary(
        markdown="\n".join(lines) + "\n", passed=passed, reasons=tuple(reasons)
    )


def _section_table(
    results: Mapping[str, CaseEntry], expected: Sequence[str], names: Mapping[str, str]
) -> list[str]:
    columns = [
        "Section",
        "Cases",
        *BEHAVIOR_COLUMNS,
        "Close OK",
        "Close INFORMATIONAL",
        "Close other",
        "Case time",
    ]
    rows = []
    sections = sorted({_section(case) for case in [*results, *expected]}, key=int)
    for section in sections:
        entries = [
            entry for case, entry in results.items() if _section(case) == section
        ]
        label = f"{section} {names[section]}" if section in names else section
        rows.append([label, *_counts(entries)])
    rows.append(["**Total**", *_counts(list(results.values()))])
    return _markdown_table(columns, rows)


def _counts(entries: list[CaseEntry]) -> list[str]:
    """Counts per behavior column (a behavior outside the known five counts as FAILED), then close and time."""
    behaviors = [
        e.get("behavior") if e.get("behavior") in BEHAVIOR_COLUMNS else "FAILED"
        for e in entries
    ]
    closes = [e.get("behaviorClose") for e in entries]
    return [
        str(len(entries)),
        *(str(behaviors.count(column)) for column in BEHAVIOR_COLUMNS),
        str(closes.count("OK")),
        str(closes.count("INFORMATIONAL")),
        str(sum(close not in ACCEPTED for close in closes)),
        _format_ms(sum(_duration(e) for e in entries)),
    ]


def _problem_table(results: Mapping[str, CaseEntry], problems: list[str]) -> list[str]:
    rows = []
    for case in problems:
        entry = results[case]
        outcome = [str(entry.get("result", ""))]
        if entry.get("behaviorClose") not in ACCEPTED:
            outcome.append(str(entry.get("resultClose", "")))
        rows.append(
            [
                case,
                str(entry.get("behavior")),
                str(entry.get("behaviorClose")),
                _plain(str(entry.get("description", ""))),
                _plain(" / ".join(part for part in outcome if part)),
            ]
        )
    return _markdown_table(["Case", "Behavior", "Close", "Description", "Result"], rows)


def _markdown_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join(" --- " for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _plain(text: str) -> str:
    """Suite descriptions contain HTML markup and line breaks; the table needs one line of plain text."""
    without_tags = re.sub(r"<[^>]*>", " ", text)
    return re.sub(r"\s+", " ", without_tags).strip().replace("|", "\\|")


def _section(case_id: str) -> str:
    return case_id.split(".", 1)[0]


def _duration(entry: CaseEntry) -> int:
    duration = entry.get("duration")
    return duration if isinstance(duration, int) else 0


def _format_ms(milliseconds: int) -> str:
    return format_duration(milliseconds / 1000)


def format_duration(seconds: float) -> str:
    """``8.3 s`` or ``14 min 48 s``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"
