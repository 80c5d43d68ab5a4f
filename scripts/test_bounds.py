"""`make test-bounds`: are pyproject.toml's ranges true? The tests at each end of them.

For each end — ``lowest`` (every runtime dependency at the lowest version its range allows,
uv's ``--resolution lowest-direct``) and ``highest`` (the newest releases the ranges allow today,
index metadata refreshed) — and each supported Python, a venv ``.venv-bounds-<end>-3.X`` gets
rawws and its runtime dependencies resolved that way, plus the test tools at their locked
versions (exact pins, so only the runtime ranges move), then runs the tests. It prints the
versions each end resolved, and a table of the outcomes.

Not part of CI on purpose: "the newest" changes from day to day, and CI must not. Run it before
a release and after `make lock`.

    python scripts/test_bounds.py [--end lowest|highest] [--python 3.X] [pytest arguments…]
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from pythons import ROOT, find_python, supported_versions

UV = ROOT / ".uv" / "bin" / "uv"
ENDS = {
    "lowest": ["--resolution", "lowest-direct"],
    "highest": ["--resolution", "highest", "--refresh"],
}
TOOL_GROUPS = ("test", "lint", "bench")


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match is not None, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def runtime_names() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [_name(requirement) for requirement in project["dependencies"]]


def locked_tool_pins() -> list[str]:
    """``name==version`` for each package the dependency groups name, as uv.lock pins it."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = {
        _name(req)
        for group in TOOL_GROUPS
        for req in pyproject["dependency-groups"][group]
    }
    locked = tomllib.loads((ROOT / "uv.lock").read_text())["package"]
    return sorted(
        f"{package['name']}=={package['version']}"
        for package in locked
        if package["name"] in wanted
    )


def installed_versions(python: Path, names: list[str]) -> dict[str, str]:
    code = "import importlib.metadata as m, sys\nfor n in sys.argv[1:]: print(n, m.version(n))"
    out = subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def run_end(
    end: str, version: str, interpreter: Path, pytest_args: list[str]
) -> tuple[bool, dict[str, str]]:
    venv = ROOT / f".venv-bounds-{end}-{version}"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("UV_PROJECT_ENVIRONMENT", None)
    subprocess.run(
        [
            str(UV),
            "venv",
            "--quiet",
            "--clear",
            "--python",
            str(interpreter),
            str(venv),
        ],
        env=env,
        check=True,
    )
    python = venv / "bin" / "python"
    with tempfile.NamedTemporaryFile(
        "w", suffix=".txt", prefix="rawws-tools-"
    ) as tools:
        tools.write("\n".join(locked_tool_pins()) + "\n")
        tools.flush()
        install = [
            str(UV),
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            *ENDS[end],
            "-e",
            str(ROOT),
        ]
        install += ["-r", tools.name]
        if subprocess.run(install, env=env, check=False).returncode != 0:
            return False, {}
    versions = installed_versions(python, runtime_names())
    print(
        f"test-bounds: {end} on Python {version}: "
        + ", ".join(f"{n} {v}" for n, v in versions.items()),
        flush=True,
    )
    result = subprocess.run(
        [str(python), "-m", "pytest", *pytest_args], cwd=ROOT, check=False
    )
    return result.returncode == 0, versions


def main(argv: list[str]) -> int:
    ends, versions = list(ENDS), supported_versions()
    while argv[:1] in (["--end"], ["--python"]) and len(argv) >= 2:
        if argv[0] == "--end":
            ends = [argv[1]]
        else:
            versions = [argv[1]]
        argv = argv[2:]
    rows: list[str] = []
    failed = False
    for end in ends:
        for version in versions:
            interpreter = find_python(version)
            if interpreter is None:
                rows.append(f"| {end} | {version} | not found | — |")
                failed = True
                continue
            passed, resolved = run_end(end, version, interpreter, argv)
            failed |= not passed
            pins = (
                ", ".join(f"{name} {resolved[name]}" for name in resolved)
                or "did not install"
            )
            rows.append(
                f"| {end} | {version} | {'passed' if passed else 'FAILED'} | {pins} |"
            )
    print("\n| end | Python | tests | runtime dependencies |\n|---|---|---|---|")
    print("\n".join(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
