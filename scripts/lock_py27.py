"""Hash the frozen Python 2.7 pins of the Autobahn TestSuite: requirements/*-py27.in → *-py27.txt.

uv cannot resolve for Python 2.7, and nothing there moves any more, so the versions are pinned by
hand in the ``.in`` files; this script only adds, for each pin, the sha256 of every file of that
release that a Python 2.7 pip may pick (the sdist and the wheels tagged for Python 2), read from
the index's JSON API (PEP 691). pip then installs with ``--require-hashes``.

    python scripts/lock_py27.py
"""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INDEX = "https://pypi.org/simple"
PY2_WHEEL = re.compile(r"-(py2|py27|cp27|py2\.py3)-")
SDIST = (".tar.gz", ".zip", ".tar.bz2")


def _pins(source: Path) -> list[tuple[str, str]]:
    pins = []
    for line in source.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins.append((name, version))
    return pins


def _files(name: str, version: str) -> list[str]:
    request = urllib.request.Request(
        f"{INDEX}/{re.sub(r'[-_.]+', '-', name).lower()}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        files = json.load(answer)["files"]
    normal = re.sub(r"[-_.]+", "_", name).lower()
    hashes = []
    for entry in files:
        filename: str = entry["filename"]
        stem = re.sub(r"[-_.]+", "_", filename).lower()
        if not stem.startswith(f"{normal}_{re.sub(r'[-_.]+', '_', version)}"):
            continue
        if filename.endswith(SDIST) or (
            filename.endswith(".whl") and PY2_WHEEL.search(filename)
        ):
            hashes.append(entry["hashes"]["sha256"])
    if not hashes:
        raise SystemExit(
            f"lock_py27: no Python 2.7 file of {name}=={version} on {INDEX}"
        )
    return sorted(hashes)


def lock(source: Path) -> None:
    header = [line for line in source.read_text().splitlines() if line.startswith("#")]
    lines = [
        *header,
        "# Written by scripts/lock_py27.py from "
        + source.name
        + ": do not edit by hand.",
    ]
    for name, version in _pins(source):
        hashes = _files(name, version)
        lines.append(f"{name}=={version} \\")
        lines.extend(
            f"    --hash=sha256:{digest}" + (" \\" if i < len(hashes) - 1 else "")
            for i, digest in enumerate(hashes)
        )
    target = source.with_suffix(".txt")
    target.write_text("\n".join(lines) + "\n")
    print(f"wrote {target.relative_to(ROOT)}")


def main() -> int:
    for source in sorted((ROOT / "requirements").glob("*-py27.in")):
        lock(source)
    return 0


if __name__ == "__main__":
    sys.exit(main())
