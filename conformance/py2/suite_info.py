"""Print, as JSON, the suite's versions, section names and the case IDs wstest runs for some patterns.

Runs on the Python 2.7 of the wstest environment, so the case list comes from the
suite itself: the same pattern rules as a spec's "cases" entry.
Usage: python2.7 suite_info.py PATTERN...   (e.g. "1.*" "12.1.1")
"""
from __future__ import print_function

import json
import platform
import sys

import autobahn
import autobahntestsuite
from autobahntestsuite.case import CaseBasename, CaseCategories, Cases, CaseSetname, CaseSubCategories
from autobahntestsuite.caseset import CaseSet


def main():
    patterns = sys.argv[1:]
    case_set = CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories)
    unknown = [p for p in patterns if "*" not in p and p not in case_set.CasesIndices]
    if unknown:
        sys.exit("unknown case IDs: %s" % ", ".join(unknown))
    cases = case_set.parseSpecCases({"cases": patterns, "exclude-cases": []})
    print(json.dumps({
        "testsuite": autobahntestsuite.version,
        "autobahn": autobahn.version,
        "python": platform.python_version(),
        "sections": CaseCategories,
        "cases": cases,
    }))


if __name__ == "__main__":
    main()
