"""A password in a URL never reaches the output of a refused start, in any form a driver takes it.

The real command (``python -m rawws serve``) is refused because what the URL names cannot be reached;
its one line names the URL, and the password in it is ``***``: in the user information, and as
``?password=`` (the only way to give one to Redis over a ``unix://`` socket).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit import free_port
from tests.support.nodes import serve_once
from tests.support.redis_server import RedisServer

SECRET = "SECRET-d41d8cd98f00"


@pytest.mark.parametrize(
    ("flag", "url"),
    [
        ("--bus", f"unix:///nonexistent.sock?password={SECRET}"),
        ("--bus", f"unix:///nonexistent.sock?db=0&password={SECRET}"),
        ("--bus", "redis://:{secret}@127.0.0.1:{port}/0"),
        ("--bus", "redis://127.0.0.1:{port}/0?password={secret}"),
        ("--bus", "redis+sentinel://:{secret}@127.0.0.1:{port}/bus/0"),
        ("--bus", "redis+sentinel://127.0.0.1:{port}/bus?sentinel_password={secret}"),
        ("--db", "postgresql+asyncpg://rawws@127.0.0.1:{port}/rawws?password={secret}"),
        ("--db", "postgresql+asyncpg://rawws:{secret}@127.0.0.1:{port}/rawws"),
    ],
)
def test_a_refused_start_shows_no_password(tmp_path: Path, flag: str, url: str) -> None:
    url = url.format(secret=SECRET, port=free_port())  # nothing listens there
    result = serve_once(tmp_path, flag, url)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"rawws: {flag} "), result.stderr
    assert "***" in lines[0]
    assert SECRET not in result.stderr


def test_an_unknown_bus_parameter_is_one_line_without_its_value(tmp_path: Path) -> None:
    """redis-py takes every query parameter as a keyword: a misspelt ``?passwd=`` was a traceback."""
    url = f"unix:///nonexistent.sock?db=0&passwd={SECRET}"
    result = serve_once(tmp_path, "--bus", url)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "rawws: --bus unix:///nonexistent.sock?db=0&passwd=***: a parameter of the bus URL is not"
        " one Redis's client takes (unexpected keyword argument 'passwd')\n"
    )


def test_a_bad_sentinel_url_is_one_line_without_its_password(tmp_path: Path) -> None:
    """Checked before anything is reached: the host list, the service, the database."""
    url = f"redis+sentinel://:{SECRET}@s1:26379,,s2:26379/bus/0"
    result = serve_once(tmp_path, "--bus", url)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "rawws: --bus redis+sentinel://:***@s1:26379,,s2:26379/bus/0: the sentinel URL's host"
        " list has an empty one: host:port, separated by commas"
        " (redis+sentinel://[:password@]host:26379[,host:port…]/service[/db])\n"
    )


def test_no_sentinel_answering_is_one_line(tmp_path: Path) -> None:
    where = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    result = serve_once(tmp_path, "--bus", f"redis+sentinel://:{SECRET}@{where}/bus")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"rawws: --bus redis+sentinel://:***@{where}/bus: cannot reach the bus:"
        f" no sentinel answered at {where}: is redis-sentinel running there?\n"
    )


def test_a_redis_that_wants_a_password_is_named_without_it(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """The tests' Redis has ``requirepass``: no password, or a wrong one, is one line saying so."""
    wrong = redis_server.url.replace(redis_server.password, SECRET)
    for url, said in [
        (
            redis_server.anonymous_url,
            "Redis asks for a password and the URL gives none",
        ),
        (wrong, "Redis refused the URL's password"),
    ]:
        result = serve_once(tmp_path, "--bus", url)
        assert (result.returncode, result.stdout) == (1, ""), result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and said in lines[0], result.stderr
        assert SECRET not in result.stderr
