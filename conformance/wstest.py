"""Find or install Autobahn TestSuite ``wstest`` 0.8.2.

wstest only runs on Python 2.7, so it lives in its own Python 2.7 virtualenv in
the user's cache dir, built once and reused by every later run.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from conformance.console import say

REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements"
# wstest 0.8.2 and everything it runs on, every version pinned and every file hashed (scripts/lock_py27.py).
TESTSUITE_LOCK = REQUIREMENTS / "wstest-py27.txt"
# virtualenv for Python 2.7 (which ships none), pinned the same way: 20.16 stopped running on 2.7.
VIRTUALENV_LOCK = REQUIREMENTS / "virtualenv-py27.txt"
PIP_LOCKED = [
    "-m",
    "pip",
    "install",
    "--quiet",
    "--disable-pip-version-check",
    "--require-hashes",
    "--no-deps",
]
INSTALL_TIMEOUT = (
    900  # seconds for one install step, so a stuck download cannot hang CI
)

DOCKER_HINT = """\
No Python 2.7 found (looked for $(pyenv root)/versions/2.7.18/bin/python2.7 and
python2.7 on PATH); the Autobahn TestSuite needs one. Either:
  - install it: pyenv install 2.7.18
  - set WSTEST to the wstest script of an existing Python 2.7 environment
  - or run the suite in the public Docker image crossbario/autobahn-testsuite
    (conformance/README.md, "Without Python 2.7", has the full steps):
      docker run --rm --network host -v /tmp/rawws-autobahn:/autobahn \\
          crossbario/autobahn-testsuite \\
          wstest -m fuzzingclient -s /autobahn/fuzzingclient.json
"""


class WstestUnavailable(RuntimeError):
    """wstest can neither be found nor installed on this machine."""


@dataclass(frozen=True)
class Wstest:
    """How to run wstest, and the Python 2.7 that runs it (for the helper scripts in py2/)."""

    command: list[str]
    python: list[str]


def locate_wstest() -> Wstest:
    """Return a ready wstest: the ``WSTEST`` override, else the cached virtualenv (built if needed)."""
    override = os.environ.get("WSTEST")
    if override:
        script = Path(override)
        say(f"using WSTEST={script}")
        return Wstest(command=[str(script)], python=_interpreter_of(script))
    return _ensure_virtualenv(_cache_dir())


def _interpreter_of(script: Path) -> list[str]:
    """Read the interpreter from the script's ``#!`` line (console scripts made by pip have one)."""
    try:
        with script.open("rb") as handle:
            first_line = handle.readline().decode("utf-8", "replace").strip()
    except OSError as error:
        raise WstestUnavailable(f"WSTEST={script} cannot be read: {error}") from error
    if not first_line.startswith("#!"):
        raise WstestUnavailable(
            f"WSTEST={script} has no #! line; it must be the wstest script of a "
            "Python 2.7 environment, whose interpreter also runs conformance/py2/"
        )
    return shlex.split(first_line[2:])


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rawws"


def _lock_digest() -> str:
    """A venv installed from other pins than today's lock is installed again."""
    return hashlib.sha256(
        TESTSUITE_LOCK.read_bytes() + VIRTUALENV_LOCK.read_bytes()
    ).hexdigest()[:16]


def _ensure_virtualenv(cache: Path) -> Wstest:
    venv = cache / "wstest-venv"
    ready = Wstest(
        command=[str(venv / "bin" / "wstest")], python=[str(venv / "bin" / "python")]
    )
    marker = venv / f".rawws-wstest-lock-{_lock_digest()}"
    if marker.exists():
        return ready
    cache.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(cache / "wstest-venv.lock"):
        if not marker.exists():  # another run may have finished it meanwhile
            _install(cache, venv, marker)
    return ready


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Keep two runs started together from building the same virtualenv at once."""
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _install(cache: Path, venv: Path, marker: Path) -> None:
    python27 = _find_python27()
    say(f"setting up wstest in {venv} (once; later runs reuse it)")
    if venv.exists():  # incomplete, or installed from other pins
        say(
            f"removing {venv}: it was not installed from {TESTSUITE_LOCK.name} as it is now"
        )
        shutil.rmtree(venv)
    virtualenv_dir = _ensure_virtualenv_package(python27, cache / "py2-virtualenv")
    say(f"creating a Python 2.7 virtualenv: {python27} -m virtualenv {venv}")
    _run([python27, "-m", "virtualenv", str(venv)], pythonpath=virtualenv_dir)
    say(
        f"installing wstest 0.8.2 into {venv} from {TESTSUITE_LOCK.name} (builds wsaccel with the C compiler)"
    )
    _run([str(venv / "bin" / "python"), *PIP_LOCKED, "-r", str(TESTSUITE_LOCK)])
    marker.write_text(TESTSUITE_LOCK.read_text())
    say("wstest is ready")


def _find_python27() -> str:
    """Prefer pyenv's 2.7.18, then any python2.7 on PATH."""
    candidates = [_pyenv_root() / "versions" / "2.7.18" / "bin" / "python2.7"]
    on_path = shutil.which("python2.7")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.exists() and _runs(candidate):
            say(f"using Python 2.7 at {candidate}")
            return str(candidate)
    raise WstestUnavailable(DOCKER_HINT)


def _pyenv_root() -> Path:
    if shutil.which("pyenv"):
        result = subprocess.run(
            ["pyenv", "root"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0 and result.stdout.strip():
            return Path(result.stdout.strip())
    return Path.home() / ".pyenv"


def _runs(python: Path) -> bool:
    """A pyenv shim on PATH exists even when no 2.7 is installed behind it."""
    result = subprocess.run(
        [str(python), "-c", "import sys; assert sys.version_info[:2] == (2, 7)"],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def _ensure_virtualenv_package(python27: str, target: Path) -> Path:
    """Install virtualenv for Python 2.7 into a private dir (a fresh 2.7 ships none), from its lock."""
    marker = target / f".rawws-lock-{_lock_digest()}"
    if marker.exists():
        return target
    if target.exists():
        shutil.rmtree(target)
    say(
        f"installing virtualenv for Python 2.7 into {target} from {VIRTUALENV_LOCK.name}"
    )
    _run([python27, *PIP_LOCKED, "--target", str(target), "-r", str(VIRTUALENV_LOCK)])
    marker.write_text(VIRTUALENV_LOCK.read_text())
    return target


def python2_env(pythonpath: Path | None = None) -> dict[str, str]:
    """Environment for Python 2.7 children: no Python 3 module paths, output unbuffered for live logs."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("PYTHONPATH", "PYTHONHOME")
    }
    env["PYTHONUNBUFFERED"] = "1"
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return env


def _run(command: list[str], pythonpath: Path | None = None) -> None:
    try:
        result = subprocess.run(
            command, env=python2_env(pythonpath), check=False, timeout=INSTALL_TIMEOUT
        )
    except subprocess.TimeoutExpired as error:
        raise WstestUnavailable(
            f"gave up after {INSTALL_TIMEOUT} s: {shlex.join(command)}"
        ) from error
    if result.returncode != 0:
        raise WstestUnavailable(
            f"command failed with exit code {result.returncode}: {shlex.join(command)}"
        )


if __name__ == "__main__":
    # `python -m conformance.wstest`: install wstest once (CI does it before the tests).
    try:
        print(" ".join(locate_wstest().command))
    except WstestUnavailable as error:
        raise SystemExit(f"cannot install wstest: {error}") from None
