"""Read wstest's JSON reports from one or more output dirs into one index for the summary."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from conformance.summary import is_problem

INDEX_FILE = "index.json"
DETAIL_FIELDS = ("description", "result", "resultClose")


def load_reports(outdirs: Iterable[Path]) -> dict[str, dict[str, dict[str, Any]]]:
    """Merge the ``index.json`` of each dir that has one (wstest writes it only when it finishes).

    ``reportfile`` becomes an absolute path, and cases worth explaining get their
    description and result texts from the per-case report.
    """
    merged: dict[str, dict[str, dict[str, Any]]] = {}
    for outdir in outdirs:
        index_path = outdir / INDEX_FILE
        if not index_path.exists():
            continue
        index = json.loads(index_path.read_text(encoding="utf-8"))
        for agent, cases in index.items():
            for case_id, entry in cases.items():
                entry["reportfile"] = str(outdir / entry["reportfile"])
                if is_problem(entry):
                    entry.update(_details(Path(entry["reportfile"])))
                merged.setdefault(agent, {})[case_id] = entry
    return merged


def _details(report_file: Path) -> dict[str, Any]:
    try:
        report = json.loads(report_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {field: report[field] for field in DETAIL_FIELDS if field in report}
