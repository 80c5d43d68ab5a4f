"""The Pythons rawws supports, and where this machine has each one.

The list is pyproject.toml's ``Programming Language :: Python :: 3.X`` classifiers, its one home.
An interpreter is looked for as pyenv installs it (``$(pyenv root)/versions/3.X.*``, newest
first), then as ``python3.X`` on ``PATH``, then where `uv python install` puts one; a candidate counts only if it runs and says it is
3.X (a pyenv shim exists even where no such version is installed behind it).

    python scripts/pythons.py            # every supported version, one a line
    python scripts/pythons.py find 3.12  # the path of a 3.12, or exit 1
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLASSIFIER = re.compile(r"^Programming Language :: Python :: (3\.\d+)$")


def supported_versions() -> list[str]:
    """``["3.11", "3.12", "3.13"]``, from pyproject.toml's classifiers, oldest first."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [
        match.group(1)
        for text in project["classifiers"]
        if (match := CLASSIFIER.match(text))
    ]
    return sorted(
        found, key=lambda version: tuple(int(part) for part in version.split("."))
    )


def pyenv_root() -> Path:
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    if shutil.which("pyenv"):
        result = subprocess.run(
            ["pyenv", "root"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0 and result.stdout.strip():
            return Path(result.stdout.strip())
    return Path.home() / ".pyenv"


def _patch_level(path: Path) -> tuple[int, ...]:
    return tuple(
        int(part) if part.isdigit() else -1
        for part in path.parent.parent.name.split(".")
    )


def uv_python_dir() -> Path:
    """Where `uv python install` puts interpreters (.ci/run's last resort)."""
    if os.environ.get("UV_PYTHON_INSTALL_DIR"):
        return Path(os.environ["UV_PYTHON_INSTALL_DIR"])
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "uv" / "python"


def candidates(version: str) -> list[Path]:
    """Where a Python ``version`` may be, most preferred first: pyenv's, PATH's, uv's."""
    found = sorted(
        pyenv_root().glob(f"versions/{version}.*/bin/python{version}"),
        key=_patch_level,
        reverse=True,
    )
    on_path = shutil.which(f"python{version}")
    if on_path:
        found.append(Path(on_path))
    found.extend(
        sorted(
            uv_python_dir().glob(f"cpython-{version}.*/bin/python{version}"),
            reverse=True,
        )
    )
    return found


def runs_as(python: Path, version: str) -> bool:
    try:
        result = subprocess.run(
            [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and result.stdout.strip() == version


def find_python(version: str) -> Path | None:
    """The first candidate that really is Python ``version``, or None."""
    return next((path for path in candidates(version) if runs_as(path, version)), None)


def main(argv: list[str]) -> int:
    if not argv:
        print("\n".join(supported_versions()))
        return 0
    if len(argv) == 2 and argv[0] == "find":
        found = find_python(argv[1])
        if found is None:
            print(
                f"no Python {argv[1]} found (looked in {pyenv_root()}/versions and on PATH)",
                file=sys.stderr,
            )
            return 1
        print(found)
        return 0
    print("usage: python scripts/pythons.py [find 3.X]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
