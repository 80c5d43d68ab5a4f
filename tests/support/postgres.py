"""A throwaway PostgreSQL cluster for the tests that must run against the real thing.

``postgres_cluster`` (session scope) runs ``initdb`` in a fresh temporary
directory and ``pg_ctl start`` on a free loopback port with fsync off; it is
stopped (``-m immediate``) and deleted when the session ends. ``postgres_url``
gives each test its own new database on that cluster, so tests never see each
other's rows.

``initdb`` refuses to run as root, so as root the binaries run as the
``postgres`` system user through ``runuser``. Authentication is ``trust``: the
cluster listens on 127.0.0.1 only and lives as long as the test session.

Without PostgreSQL binaries the tests that need them are skipped, except in CI
(``CI=true``), where a missing database must fail the build instead of hiding.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testkit import free_port

SUPERUSER = "postgres"
START_TIMEOUT_S = 60
START_ATTEMPTS = 3  # the free port may be taken between probing it and binding it

_database_numbers = itertools.count(1)


@dataclass(frozen=True)
class PostgresCluster:
    host: str
    port: int
    user: str
    directory: Path
    started_in_s: float  # how long initdb + start took, for the curious

    def url(self, database: str, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://{self.user}@{self.host}:{self.port}/{database}"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


def _find_bin_dir() -> Path | None:
    """The newest Debian ``/usr/lib/postgresql/<major>/bin``, else wherever ``initdb`` is on PATH."""
    candidates = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    for directory in reversed(candidates):
        if (directory / "pg_ctl").exists():
            return directory
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


def _runner() -> list[str]:
    """The command prefix that runs PostgreSQL's binaries as an unprivileged user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        _unavailable("running as root and there is no 'postgres' user to run initdb as")
    runuser = shutil.which("runuser")
    if runuser is None:
        _unavailable("running as root and runuser is missing")
    return [runuser, "-u", "postgres", "--"]


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=cwd,  # as the postgres user, our own working directory may not be readable
        env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    bin_dir = _find_bin_dir()
    if bin_dir is None:
        _unavailable("no initdb/pg_ctl in /usr/lib/postgresql/*/bin or on PATH")
    runner = _runner()
    began = time.perf_counter()
    # Under /tmp itself (not pytest's 0700 tmp tree), so the postgres user can reach it.
    root = Path(tempfile.mkdtemp(prefix="rawws-pg-"))
    data = root / "data"
    if runner:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
    started = False
    try:
        init = _run(
            [
                *runner,
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            root,
        )
        if init.returncode != 0:
            pytest.fail(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        for _attempt in range(START_ATTEMPTS):
            port = free_port()
            options = f"-k {root} -h 127.0.0.1 -p {port} -F -c max_connections=200"
            start = _run(
                [
                    *runner,
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(root / "server.log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    str(START_TIMEOUT_S),
                    "start",
                ],
                root,
            )
            if start.returncode == 0:
                started = True
                break
        if not started:
            log = (
                (root / "server.log").read_text(errors="replace")
                if (root / "server.log").exists()
                else ""
            )
            pytest.fail(f"pg_ctl start failed:\n{start.stdout}\n{start.stderr}\n{log}")
        yield PostgresCluster(
            "127.0.0.1", port, SUPERUSER, root, time.perf_counter() - began
        )
    finally:
        if started:
            _run(
                [
                    *runner,
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                root,
            )
        shutil.rmtree(root, ignore_errors=True)


async def new_database(cluster: PostgresCluster) -> str:
    """A SQLAlchemy URL of a brand-new, empty database on ``cluster``."""
    import asyncpg

    name = f"test_{os.getpid()}_{next(_database_numbers)}"
    admin = await asyncpg.connect(
        host=cluster.host, port=cluster.port, user=cluster.user, database="postgres"
    )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return cluster.url(name)


@pytest.fixture
async def postgres_url(postgres_cluster: PostgresCluster) -> AsyncIterator[str]:
    """A SQLAlchemy URL of a brand-new, empty database on the session's cluster."""
    yield await new_database(postgres_cluster)


def _pg_ctl(cluster: PostgresCluster, *arguments: str) -> None:
    bin_dir = _find_bin_dir()
    assert bin_dir is not None
    root = cluster.directory
    result = _run(
        [*_runner(), str(bin_dir / "pg_ctl"), "-D", str(root / "data"), *arguments],
        root,
    )
    assert result.returncode == 0, (
        f"pg_ctl {arguments}: {result.stdout}\n{result.stderr}"
    )


def stop_cluster(cluster: PostgresCluster) -> None:
    """Stop the session's cluster (a database outage); ``start_cluster`` brings it back on the same port."""
    _pg_ctl(cluster, "-m", "fast", "-w", "stop")


def start_cluster(cluster: PostgresCluster) -> None:
    options = f"-k {cluster.directory} -h 127.0.0.1 -p {cluster.port} -F -c max_connections=200"
    _pg_ctl(
        cluster,
        "-l",
        str(cluster.directory / "server.log"),
        "-o",
        options,
        "-w",
        "-t",
        str(START_TIMEOUT_S),
        "start",
    )


def dump_database(url: str) -> bytes:
    """``pg_dump`` of the database at ``url`` (one on the session's cluster): what a backup
    taken now would hold (the grep test of deleted messages reads it)."""
    from sqlalchemy.engine import make_url

    bin_dir = _find_bin_dir()
    assert bin_dir is not None
    parsed = make_url(url)
    result = subprocess.run(
        [
            *_runner(),
            str(bin_dir / "pg_dump"),
            *(
                "-h",
                str(parsed.host),
                "-p",
                str(parsed.port),
                "-U",
                str(parsed.username),
            ),
            str(parsed.database),
        ],
        capture_output=True,
        timeout=START_TIMEOUT_S,
        check=True,
        cwd="/",  # as the postgres user, our own working directory may not be readable
    )
    return result.stdout
