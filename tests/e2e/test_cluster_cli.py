"""`rawws serve --bus`: a bad URL or an unreachable Redis is one line and exit 1, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from testkit import free_port

RUN_TIMEOUT_S = 30


def serve(
    tmp_path: Path, *flags: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "rawws",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env={**os.environ, **(env or {})},
        check=False,
    )


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """What the operator is told is wrong: ERROR lines (INFO lines such as a generated secret aside)."""
    assert "Traceback" not in result.stderr, result.stderr
    return [
        line
        for line in result.stderr.splitlines()
        if " ERROR " in line or not line.startswith("20")
    ]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379/0",
        "redis://127.0.0.1:notaport/0",
        "redis:///0",
        "redis://127.0.0.1:6379/zero",
        "nonsense",
    ],
)
def test_a_bad_bus_url_is_one_line_and_exit_1(tmp_path: Path, url: str) -> None:
    result = serve(tmp_path, "--bus", url)
    assert result.returncode == 1, result.stderr
    lines = error_lines(result)
    assert len(lines) == 1 and "bus URL" in lines[0], lines
    assert "Traceback" not in result.stderr


def test_a_bad_bus_url_from_the_environment_too(tmp_path: Path) -> None:
    result = serve(tmp_path, env={"RAWWS_BUS_URL": "memcached://x"})
    assert result.returncode == 1
    assert len(error_lines(result)) == 1


def test_the_password_of_a_bus_url_is_never_shown(tmp_path: Path) -> None:
    result = serve(tmp_path, "--bus", "redis://user:hunter2secret@127.0.0.1:notaport/0")
    assert result.returncode == 1
    assert "hunter2secret" not in result.stderr and "***" in result.stderr


def test_an_unreachable_redis_at_start_is_one_line_and_exit_1(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    result = serve(tmp_path, "--bus", f"redis://:s3cretpw@127.0.0.1:{port}/0")
    assert result.returncode == 1, result.stderr
    lines = error_lines(result)
    assert len(lines) == 1 and "cannot reach the bus" in lines[0], lines
    assert "s3cretpw" not in result.stderr
