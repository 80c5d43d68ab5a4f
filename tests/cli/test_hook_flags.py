"""`rawws serve`'s hook flags at start: a missing, unreadable or short key file, or a URL without
one, is one line naming the flag and exit 1, and the key never shows; nothing is left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.nodes import serve_once

URL = "http://127.0.0.1:9/rawws-hooks"


def refused(result: object, *words: str) -> str:
    assert result.returncode == 1, result.stderr  # type: ignore[attr-defined]
    lines = result.stderr.splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("rawws: "), lines
    assert "Traceback" not in lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_a_missing_key_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    line = refused(
        serve_once(tmp_path, "--hook-url", URL, "--hook-secret-file", str(missing)),
        "--hook-secret-file",
        str(missing),
        "no such file",
    )
    assert not (tmp_path / "data" / "jwt-secret").exists(), line


def test_a_short_key_is_refused_and_never_shown(tmp_path: Path) -> None:
    short = tmp_path / "key"
    short.write_text("tiny-secret-value\n")
    line = refused(
        serve_once(tmp_path, "--hook-url", URL, "--hook-secret-file", str(short)),
        "--hook-secret-file",
        "shorter than 32 bytes",
    )
    assert "tiny-secret-value" not in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_key_file_is_named(tmp_path: Path) -> None:
    locked = tmp_path / "key"
    locked.write_text("k" * 40)
    locked.chmod(0)
    refused(
        serve_once(tmp_path, "--hook-url", URL, "--hook-secret-file", str(locked)),
        "--hook-secret-file",
        "cannot read it",
    )


def test_a_directory_is_not_a_key_file(tmp_path: Path) -> None:
    refused(
        serve_once(tmp_path, "--hook-url", URL, "--hook-secret-file", str(tmp_path)),
        "--hook-secret-file",
        "cannot read it",
    )


def test_a_hook_url_needs_its_key_file(tmp_path: Path) -> None:
    refused(serve_once(tmp_path, "--hook-url", URL), "--hook-url", "--hook-secret-file")


def test_a_hook_url_is_http_or_https(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k" * 40)
    refused(
        serve_once(tmp_path, "--hook-url", "ftp://x/y", "--hook-secret-file", str(key)),
        "--hook-url",
        "http:// or https://",
    )


def test_a_bad_failure_policy_is_refused(tmp_path: Path) -> None:
    result = serve_once(tmp_path, "--hook-failure", "maybe")
    assert result.returncode != 0 and "--hook-failure" in result.stderr
