"""The Autobahn summary: which results pass the project's bar, and what the table and closing line say."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from conformance.cases import SuiteInfo
from conformance.jobs import plan_jobs
from conformance.reports import load_reports
from conformance.session import Setup, closing_line
from conformance.summary import summarize
from conformance.wstest import Wstest


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


def test_jobs_share_the_cases_once_each_and_their_merged_reports_hold_every_case_once(
    tmp_path: Path,
):
    cases = ["1.1.1", "1.1.2", "1.1.3", "5.1", "12.1.1", "12.1.2", "12.1.10"]
    suite = SuiteInfo(
        testsuite_version="0.8.2",
        autobahn_version="0.10.9",
        python_version="2.7.18",
        section_names={},
        cases=cases,
    )
    setup = Setup(
        wstest=Wstest(command=[], python=[]),
        suite=suite,
        workdir=tmp_path,
        started=0.0,
        started_at=datetime.datetime.now(datetime.UTC),
    )
    jobs = plan_jobs(setup, 2, mode="fuzzingserver", label="fuzzing server")
    assert [job.name for job in jobs] == ["fuzzing server 1", "fuzzing server 2"]
    assert len({job.outdir for job in jobs}) == len({job.log_path for job in jobs}) == 2

    for number, job in enumerate(jobs, start=1):
        job.write_spec(url=f"ws://127.0.0.1:{9000 + number}")
        spec = json.loads(job.spec_path.read_text())
        assert (
            spec["url"] == f"ws://127.0.0.1:{9000 + number}"
            and spec["cases"] == job.cases
        )
        # Like the fuzzing server: its share runs as runCase 1..k, but the reports carry the real case IDs.
        job.outdir.mkdir()
        index = {
            "rawws": {
                case: {
                    **entry(),
                    "reportfile": f"rawws_case_{case.replace('.', '_')}.json",
                }
                for case in job.cases
            }
        }
        (job.outdir / "index.json").write_text(json.dumps(index))
    assert sorted(case for job in jobs for case in job.cases) == sorted(cases)

    merged = load_reports([job.outdir for job in jobs])
    assert sorted(merged["rawws"]) == sorted(cases)
    assert run(merged["rawws"], cases).passed
