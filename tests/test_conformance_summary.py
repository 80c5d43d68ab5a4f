"""The Autobahn summary: which results pass the project's bar, and what the table and closing line say."""

from __future__ import annotations

from conformance.session import closing_line
from conformance.summary import summarize


def entry(behavior: str = "OK", close: str = "OK", duration: int = 5) -> dict:
    return {"behavior": behavior, "behaviorClose": close, "duration": duration}


def run(results: dict, expected: list[str]):
    return summarize(
        {"rawws": results}, agent="rawws", expected_cases=expected, title="t"
    )


def test_only_ok_and_informational_pass():
    summary = run(
        {"1.1.1": entry(), "7.1.6": entry("INFORMATIONAL", "INFORMATIONAL")},
        ["1.1.1", "7.1.6"],
    )
    assert summary.passed and summary.reasons == ()
    assert "**Verdict: PASS**" in summary.markdown


def test_non_strict_failed_unimplemented_or_a_bad_close_fail():
    for bad in (
        entry("NON-STRICT"),
        entry("FAILED"),
        entry("UNIMPLEMENTED"),
        entry("OK", "FAILED BY CLIENT"),
    ):
        summary = run({"1.1.1": entry(), "6.4.1": bad}, ["1.1.1", "6.4.1"])
        assert not summary.passed
        assert (
            "6.4.1" in summary.markdown.split("Cases that are not OK/INFORMATIONAL")[1]
        )


def test_a_case_that_did_not_run_fails_the_run():
    summary = run({"1.1.1": entry()}, ["1.1.1", "1.1.2"])
    assert not summary.passed
    assert any("did not run" in reason for reason in summary.reasons)


def test_section_table_counts_each_behavior():
    summary = run(
        {"1.1.1": entry(), "1.1.2": entry("NON-STRICT"), "2.1": entry()},
        ["1.1.1", "1.1.2", "2.1"],
    )
    total_row = next(
        line for line in summary.markdown.splitlines() if line.startswith("| **Total**")
    )
    cells = [cell.strip() for cell in total_row.strip("|").split("|")]
    assert cells[1:7] == ["3", "2", "1", "0", "0", "0"]


def test_closing_line_counts_missing_cases_as_failed():
    results = {"1.1.1": entry(), "1.1.2": entry("FAILED")}
    assert (
        closing_line("server", results, 3) == "conformance-server: 1 passed, 2 failed"
    )
