"""Set-up and files: private modes for the data directory, the database and the secret; every bad URL or
file is one line that names it and exit 1; environment names as documented, misspellings warned about."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from rawws.config import from_env, unknown_variables
from rawws.store.opening import check_db_url
from tests.conftest import StartServer
from tests.support.nodes import serve_once


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_data_dir_database_and_secret_are_private(
    start_server: StartServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "fresh" / "data"
    server = await start_server(data_dir=str(data_dir))
    assert server.port
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "rawws.db") == 0o600  # password hashes
    assert mode(data_dir / "jwt-secret") == 0o600


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--db", "foo://x"], "unsupported database 'foo'"),
        (["--db", "postgresql://u@h/db"], "postgresql+asyncpg"),
        (["--db", "sqlite:///x.db"], "sqlite+aiosqlite"),
        (["--db", "not a url"], "not a database URL"),
        (["--db", "postgresql+asyncpg:///db"], "no host"),
        (
            [
                "--tls-cert",
                "/nonexistent/cert.pem",
                "--tls-key",
                "/nonexistent/key.pem",
            ],
            "/nonexistent/cert.pem",
        ),
        (["--jwt-public-key", "/nonexistent/idp.pem"], "/nonexistent/idp.pem"),
    ],
)
def test_a_bad_url_or_file_is_one_line_and_exit_1(
    tmp_path: Path, flags: list[str], named: str
) -> None:
    result = serve_once(tmp_path, *flags)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    problem = result.stderr.splitlines()
    assert (
        len(problem) == 1 and problem[0].startswith("rawws: ") and named in problem[0]
    ), result.stderr


def test_a_file_that_is_not_a_key_is_named(tmp_path: Path) -> None:
    not_a_key = tmp_path / "idp.pem"
    not_a_key.write_text("hello\n")
    result = serve_once(tmp_path, "--jwt-public-key", str(not_a_key))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{not_a_key}: not a PEM public key for RS256" in result.stderr


def test_an_unknown_rawws_variable_is_warned_about(tmp_path: Path) -> None:
    result = serve_once(
        tmp_path, "--db", "foo://x", env={"RAWWS_PROT": "9000", "RAWWS_PASSWORD": "x"}
    )
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "RAWWS_PROT is not a rawws setting" in warnings[0], (
        result.stderr
    )


def test_environment_names_are_the_settings_and_the_flag_spellings() -> None:
    from rawws.cli.parser import build_parser

    args = build_parser().parse_args(["serve"])
    aliases = args.env_aliases
    assert aliases["DB"] == "db_url" and aliases["PING_INTERVAL"] == "ping_interval_s"
    env = {
        "RAWWS_DB": "postgresql+asyncpg://u@h/db",
        "RAWWS_PING_INTERVAL": "7",
        "RAWWS_PORT": "9001",
    }
    config = from_env(env, aliases=aliases)
    assert (config.db_url, config.ping_interval_s, config.port) == (
        "postgresql+asyncpg://u@h/db",
        7.0,
        9001,
    )
    assert (
        from_env({"RAWWS_DB_URL": "a", "RAWWS_DB": "b"}, aliases=aliases).db_url == "a"
    )  # the setting's name wins
    assert (
        from_env({"RAWWS_DB": "b"}).db_url is None
    )  # without the flag spellings, only settings' names
    assert unknown_variables(
        {"RAWWS_DBB": "x", "RAWWS_DB": "y", "RAWWS_PASSWORD": "z"}, aliases
    ) == ["RAWWS_DBB"]


@pytest.mark.parametrize(
    "url", ["sqlite+aiosqlite:///tmp/x.db", "postgresql+asyncpg://u@localhost/db"]
)
def test_supported_urls_pass(url: str) -> None:
    check_db_url(url)
