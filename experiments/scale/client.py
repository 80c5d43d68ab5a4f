"""Which load process the scale study spawns: ``members.c`` built with gcc, or ``members.py``.

Both take the same arguments, speak the same commands and print the same
report, so the study is the same either way. The C one is the default when
gcc is there because the client shares the machine's cores with the server:
the Python one spent about half the server's CPU per delivery, and that time
was taken from the server and showed in the latencies it measured.

The C source is built once per content: the binary lives in the system's
temporary directory under the source's hash, so an edit rebuilds it and
parallel runs share one build (written under a temporary name, then renamed).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("members.c")
CLIENTS = ("c", "python")


def default_client() -> str:
    return "c" if shutil.which("gcc") else "python"


def built_members() -> Path:
    """The C load process, compiled with ``gcc -O2`` unless this source's build is cached."""
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    binary = Path(tempfile.gettempdir()) / "rawws-scale-members" / digest / "members"
    if binary.exists():
        return binary
    gcc = shutil.which("gcc")
    if gcc is None:
        raise SystemExit("--client c needs gcc on PATH")
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(f"members.{os.getpid()}.partial")
    done = subprocess.run(
        [gcc, "-O2", "-Wall", "-o", str(partial), str(SOURCE)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"gcc could not build {SOURCE}:\n{done.stderr}")
    os.replace(partial, binary)
    return binary


def members_command(client: str) -> list[str]:
    """The command of one load process, before its ``--port`` and the other arguments."""
    if client == "c":
        return [str(built_members())]
    return [sys.executable, "-m", "experiments.scale.members"]
