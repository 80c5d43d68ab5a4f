"""The package a user installs: `python -m build` gives an sdist and a wheel; the wheel, installed into a
clean venv with nothing of this checkout on its path, runs `rawws serve` with its page, its deployment
files and its C unmasker — and without a C compiler it still builds, installs and serves, unmasking in
pure Python.

The wheel is built from the sdist (what `python -m build` does), so a file the sdist forgets fails here.
The build runs without isolation, on the setuptools uv.lock pins; the runtime dependencies are installed
at their locked versions (`uv export`), so this tests the package, not the day's releases.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from testkit import free_port
from tests.support.helpers import http
from tests.support.nodes import REPO_ROOT, Node, new_log_path, wait_ready
from tests.support.systemd import INSTALL_PREFIX, directives, verify

BUILD_TIMEOUT_S = 300


def uv_binary() -> str:
    for candidate in (REPO_ROOT / ".uv" / "bin" / "uv", shutil.which("uv")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    if os.environ.get("CI") == "true":
        pytest.fail("uv is required in CI (`make sync-dev` installs it into .uv/)")
    pytest.skip("uv not found: run `make sync-dev`")


def build(outdir: Path, env: dict[str, str] | None = None) -> tuple[Path, Path]:
    """sdist + wheel into ``outdir``; returns (sdist, wheel)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "--outdir",
            str(outdir),
            str(REPO_ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sdist,) = outdir.glob("rawws-*.tar.gz")
    (wheel,) = outdir.glob("rawws-*.whl")
    return sdist, wheel


def install(wheel: Path, venv: Path, uv: str) -> Path:
    """A clean venv (no access to this checkout or its venv) with the locked runtime dependencies and ``wheel``."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    exported = subprocess.run(
        [
            uv,
            "export",
            "--frozen",
            "--no-dev",
            "--no-emit-project",
            "--format",
            "requirements-txt",
            "--quiet",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    requirements = venv / "runtime.txt"
    requirements.write_text(exported)
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            "--require-hashes",
            "-r",
            str(requirements),
        ],
        check=True,
        timeout=BUILD_TIMEOUT_S,
        env=env,
    )
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            "--no-deps",
            str(wheel),
        ],
        check=True,
        timeout=BUILD_TIMEOUT_S,
        env=env,
    )
    return venv


def clean_env() -> dict[str, str]:
    """No RAWWS_* setting, no PYTHONPATH: the installed wheel, and nothing of the checkout, is what runs."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RAWWS_") and k not in drop
    }


def installed_python(venv: Path, code: str) -> str:
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=venv,
        env=clean_env(),
        check=True,
    )
    return result.stdout.strip()


async def serve_from(venv: Path, workdir: Path) -> Node:
    """The venv's own `rawws` script, run from outside the checkout, ready once /healthz answers."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        str(venv / "bin" / "rawws"),
        "serve",
        "--port",
        str(port),
        "--echo",
        "--data-dir",
        str(workdir / "d"),
    ]
    log_path = new_log_path(workdir)
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=workdir,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
        )
    node = Node(port, process, log_path, command)
    try:
        await wait_ready(node)
    except BaseException:
        node.kill()
        await process.wait()
        raise
    return node


async def check_serves(venv: Path, workdir: Path) -> None:
    """The page and its assets, /healthz, and an echo through the venv's own `rawws send`."""
    node = await serve_from(venv, workdir)
    try:
        page = await http(node.port, "GET", "/")
        assert page.status == 200 and b"<!doctype html>" in page.body.lower()
        script = await http(node.port, "GET", "/static/app.js")
        assert script.status == 200 and len(script.body) > 1000
        send = await asyncio.create_subprocess_exec(
            str(venv / "bin" / "rawws"), "send", f"ws://127.0.0.1:{node.port}/echo", "from the wheel",
            cwd=workdir, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(send.communicate(), 60)
        assert send.returncode == 0, err
        assert out.decode() == "from the wheel\n", (out, err)
    finally:
        assert await node.stop() == 0, node.log()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build(tmp_path_factory.mktemp("dist"))


def test_the_sdist_holds_what_the_wheel_is_built_from(built: tuple[Path, Path]) -> None:
    sdist, _ = built
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in (
        "pyproject.toml",
        "setup.py",
        "LICENSE",
        "README.md",
        "rawws/core/_mask.c",
        "rawws/chat/static/index.html",
        "rawws/chat/static/app.js",
        "rawws/chat/static/rawws.js",
        "rawws/py.typed",
        "deploy/rawws.service",
        "docs/deploying.md",
    ):
        assert needed in names, needed


async def test_the_wheel_serves_from_a_clean_venv_with_its_c_unmasker(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("a C compiler is required in CI (gcc)")
        pytest.skip("no C compiler: the wheel was built without the C unmasker")
    _, wheel = built
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert any(
        name.startswith("rawws/core/_mask.") and name.endswith(".so") for name in names
    ), names
    assert "rawws/chat/static/index.html" in names and "rawws/py.typed" in names
    venv = install(wheel, tmp_path / "venv", uv_binary())
    where = installed_python(
        venv,
        "import rawws, rawws.core.masking as m; print(rawws.__file__, m.FAST_MASKING)",
    )
    module, fast = where.split()
    assert Path(module).is_relative_to(venv) and fast == "True", where
    # The deployment files come with it, and the unit, with the venv in /opt/rawws's place, names files that
    # the install put there (ExecStart, Documentation=) and passes systemd-analyze.
    for shared in (
        "share/rawws/rawws.service",
        "share/rawws/nginx.conf",
        "share/doc/rawws/deploying.md",
    ):
        assert (venv / shared).is_file(), shared
    unit = tmp_path / "rawws.service"
    unit.write_text(
        (venv / "share/rawws/rawws.service")
        .read_text()
        .replace(INSTALL_PREFIX, str(venv))
    )
    found = directives(unit.read_text())
    assert Path(found["ExecStart"][0].split()[0]).is_file()
    assert Path(found["Documentation"][0].removeprefix("file://")).is_file()
    verify(unit)
    await check_serves(venv, tmp_path / "run")


async def test_without_a_compiler_the_wheel_builds_and_serves_in_pure_python(
    tmp_path: Path,
) -> None:
    _, wheel = build(
        tmp_path / "dist",
        env={"CC": "/nonexistent/cc", "LDSHARED": "/nonexistent/cc -shared"},
    )
    with zipfile.ZipFile(wheel) as archive:
        assert not [name for name in archive.namelist() if name.endswith(".so")]
    venv = install(wheel, tmp_path / "venv", uv_binary())
    assert (
        installed_python(venv, "import rawws.core.masking as m; print(m.FAST_MASKING)")
        == "False"
    )
    await check_serves(venv, tmp_path / "run")


def test_the_build_backend_pin_is_the_locked_one() -> None:
    """pyproject's build constraint (editable installs) and uv.lock's setuptools (these builds) agree."""
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    (constraint,) = pyproject["tool"]["uv"]["build-constraint-dependencies"]
    locked = {
        p["name"]: p.get("version")
        for p in tomllib.loads((REPO_ROOT / "uv.lock").read_text())["package"]
    }
    assert constraint == f"setuptools=={locked['setuptools']}"
