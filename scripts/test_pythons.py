"""`make test-pythons`: the unit and integration tests on every other supported Python.

Each version gets its own venv (``.venv-3.X``) synced from the same uv.lock as ``.venv``, then
runs the same pytest command. A version this machine does not have is skipped with a line that
says so, except under ``CI=true``, where it is a failure: CI promises every supported Python.

    python scripts/test_pythons.py [--skip 3.11] [pytest arguments…]
"""

from __future__ import annotations

import os
import subprocess
import sys

from pythons import ROOT, find_python, pyenv_root, supported_versions

UV = ROOT / ".uv" / "bin" / "uv"


def run_on(version: str, python: str, pytest_args: list[str]) -> int:
    venv = ROOT / f".venv-{version}"
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON_DOWNLOADS": "never",
    }
    sync = [str(UV), "sync", "--locked", "--quiet", "--all-groups", "--python", python]
    if subprocess.run(sync, cwd=ROOT, env=env, check=False).returncode != 0:
        print(
            f"test-pythons: cannot install the lock into {venv.name}", file=sys.stderr
        )
        return 1
    print(f"test-pythons: the tests on Python {version} ({python})", flush=True)
    return subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", *pytest_args],
        cwd=ROOT,
        check=False,
    ).returncode


def main(argv: list[str]) -> int:
    skip: set[str] = set()
    while argv[:1] == ["--skip"] and len(argv) >= 2:
        skip.add(argv[1])
        argv = argv[2:]
    failed: list[str] = []
    for version in supported_versions():
        if version in skip:
            continue
        python = find_python(version)
        if python is None:
            where = f"{pyenv_root()}/versions/{version}.* or python{version} on PATH"
            if os.environ.get("CI") == "true":
                print(
                    f"test-pythons: no Python {version} ({where}); CI runs every supported one",
                    file=sys.stderr,
                )
                failed.append(version)
            else:
                print(
                    f"test-pythons: skipped Python {version}: not found ({where})",
                    file=sys.stderr,
                )
            continue
        if run_on(version, str(python), argv) != 0:
            failed.append(version)
    if failed:
        print(f"test-pythons: failed on Python {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
