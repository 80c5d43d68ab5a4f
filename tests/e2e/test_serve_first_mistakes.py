"""Every first mistake of `rawws serve` is one line, exit 1, no traceback; a Ctrl-C while it starts is one line, 130.

Each case runs the real command (`python -m rawws serve …`, from ``tests.support.nodes``) and asserts its whole
output: nothing on stdout, exactly the expected line on stderr, and the exit code. The line names the
flag or variable and its value and says what to do. The database cases run against a real PostgreSQL
(``tests.support.postgres``): a role that does not exist, a database that does not exist, a role that may not
create the schema. A database or a bus that takes the connection and never answers is a socket here
(``silent``). Start-up is interrupted at the points a Ctrl-C finds it in: loading its modules,
connecting to the database, creating the schema, connecting to the bus.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from testkit import free_port
from tests.support.nodes import serve_once, spawn_serve
from tests.support.postgres import PostgresCluster

SEE_HELP = "see `rawws serve --help`"
INTERRUPTED = "rawws: interrupted by SIGINT while starting; nothing was served"
WAIT_S = 30.0  # for a process to reach the point a test interrupts it at, or to end


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def assert_said(outcome: Outcome, line: str, code: int = 1) -> None:
    """All the command wrote is ``line`` on stderr, and it exited with ``code``."""
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert (outcome.code, outcome.stdout, outcome.stderr) == (code, "", line + "\n")


def refused(directory: Path, *flags: str, env: dict[str, str] | None = None) -> Outcome:
    result = serve_once(directory, *flags, env=env)
    return Outcome(result.returncode, result.stdout, result.stderr)


async def ended(process: asyncio.subprocess.Process) -> Outcome:
    stdout, stderr = await asyncio.wait_for(process.communicate(), WAIT_S)
    assert process.returncode is not None
    return Outcome(process.returncode, stdout.decode(), stderr.decode())


# -- flags and variables ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (
            ["--bogus"],
            f"rawws: --bogus: not a flag of rawws serve (did you mean --bus? {SEE_HELP})",
        ),
        (
            ["--db-url", "x"],
            f"rawws: --db-url: not a flag of rawws serve (did you mean --db? {SEE_HELP})",
        ),
        (["--port", "abc"], f"rawws: --port abc: expected an integer ({SEE_HELP})"),
        (
            ["--ping-interval", "soon"],
            f"rawws: --ping-interval soon: expected a number ({SEE_HELP})",
        ),
        (["--port"], f"rawws: --port: expected one argument ({SEE_HELP})"),
    ],
)
def test_a_flag_that_does_not_parse_is_named_with_the_help_to_read(
    tmp_path: Path, flags: list[str], line: str
) -> None:
    assert_said(refused(tmp_path, *flags), line)


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (
            ["--ping-interval", "-5"],
            "rawws: --ping-interval -5: must be 0 (no pings) or more seconds",
        ),
        (
            ["--port", "70000"],
            "rawws: --port 70000: must be 0 to 65535 (0 picks a free port)",
        ),
        (["--workers", "0"], "rawws: --workers 0: must be 1 or more"),
        (["--db-timeout", "0"], "rawws: --db-timeout 0: must be more than 0 seconds"),
        (
            ["--max-message-size", "0"],
            "rawws: --max-message-size 0: must be 1 byte or more",
        ),
    ],
)
def test_a_number_out_of_range_is_refused(
    tmp_path: Path, flags: list[str], line: str
) -> None:
    assert_said(refused(tmp_path, *flags), line)


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"RAWWS_PORT": "abc"}, "rawws: RAWWS_PORT=abc: expected an integer"),
        (
            {"RAWWS_PING_INTERVAL_S": "-5"},
            "rawws: RAWWS_PING_INTERVAL_S=-5: must be 0 (no pings) or more seconds",
        ),
        (
            {"RAWWS_DB_TIMEOUT": "0"},
            "rawws: RAWWS_DB_TIMEOUT=0: must be more than 0 seconds",
        ),
    ],
)
def test_a_variable_is_refused_by_its_name_like_its_flag(
    tmp_path: Path, env: dict[str, str], line: str
) -> None:
    assert_said(refused(tmp_path, env=env), line)


# -- where it listens, its files -----------------------------------------------------------


def test_a_host_that_is_not_an_address_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        socket.gaierror
    ) as lookup:  # the resolver's own words, as the server meets them
        socket.getaddrinfo(
            "999.1.1.1", 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    assert_said(
        refused(tmp_path, "--host", "999.1.1.1"),
        f"rawws: --host 999.1.1.1: not an address of this machine ({lookup.value.strerror}): "
        "try 127.0.0.1, or 0.0.0.0 for all of them",
    )


def test_an_address_of_another_machine_is_named(tmp_path: Path) -> None:
    assert_said(  # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never this machine's
        refused(tmp_path, "--host", "192.0.2.1"),
        "rawws: --host 192.0.2.1: not an address of this machine (Cannot assign requested address): "
        "try 127.0.0.1, or 0.0.0.0 for all of them",
    )


def test_a_port_in_use_is_named_before_anything_is_made(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        outcome = refused(tmp_path, "--host", "127.0.0.1", "--port", str(port))
    assert_said(
        outcome,
        f"rawws: --port {port}: in use by another process: stop it or pick another port "
        "(0 picks a free one)",
    )
    assert not (
        tmp_path / "data"
    ).exists()  # the port is had first: no secret, no database was made


def test_a_certificate_that_is_not_one_is_named(tmp_path: Path) -> None:
    not_a_certificate = tmp_path / "cert.pem"
    not_a_certificate.write_text("hello\n")
    assert_said(
        refused(
            tmp_path,
            "--tls-cert",
            str(not_a_certificate),
            "--tls-key",
            str(not_a_certificate),
        ),
        f"rawws: --tls-cert {not_a_certificate}: not a PEM certificate (no -----BEGIN CERTIFICATE----- block "
        "that parses)",
    )


def test_a_data_dir_that_is_a_file_is_named(tmp_path: Path) -> None:
    a_file = tmp_path / "data"
    a_file.write_text("")
    assert_said(
        refused(tmp_path, "--data-dir", str(a_file)),
        f"rawws: --data-dir {a_file}: a file, not a directory: name a directory (it is created if missing)",
    )


def test_the_one_line_is_a_json_object_when_the_log_is_json(tmp_path: Path) -> None:
    outcome = refused(tmp_path, "--host", "192.0.2.1", env={"RAWWS_LOG_FORMAT": "json"})
    assert (outcome.code, outcome.stdout, len(outcome.stderr.splitlines())) == (
        1,
        "",
        1,
    ), outcome.stderr
    line = json.loads(outcome.stderr)
    assert (line["level"], line["logger"]) == ("ERROR", "rawws")
    assert line["message"].startswith(
        "--host 192.0.2.1: not an address of this machine"
    )


# -- the database ---------------------------------------------------------------------------


@dataclass
class Silent:
    """A port that takes every connection and never says a word (a firewall's black hole, a wrong service)."""

    port: int
    accepted: asyncio.Event
    held: list[asyncio.StreamWriter] = field(default_factory=list)


@pytest.fixture
async def silent() -> AsyncIterator[Silent]:
    accepted = asyncio.Event()
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        accepted.set()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield Silent(server.sockets[0].getsockname()[1], accepted, held)
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_database_that_never_answers_is_named_after_the_timeout(
    tmp_path: Path, silent: Silent
) -> None:
    url = f"postgresql+asyncpg://rawws@127.0.0.1:{silent.port}/rawws"
    began = time.monotonic()
    outcome = await ended(
        await spawn_serve(tmp_path, "--db", url, "--db-timeout", "0.5")
    )
    assert_said(
        outcome,
        f"rawws: --db {url}: the database did not answer within 0.5 s: is it running, and is "
        "that its address? (--db-timeout sets the wait)",
    )
    assert silent.accepted.is_set()
    assert (
        time.monotonic() - began < WAIT_S
    )  # the wait was the setting's, not asyncpg's minute


async def test_the_database_timeout_is_a_variable_too(
    tmp_path: Path, silent: Silent
) -> None:
    url = f"postgresql+asyncpg://rawws@127.0.0.1:{silent.port}/rawws"
    outcome = await ended(
        await spawn_serve(
            tmp_path, env={"RAWWS_DB_URL": url, "RAWWS_DB_TIMEOUT_S": "0.5"}
        )
    )
    assert_said(
        outcome,
        f"rawws: RAWWS_DB_URL={url}: the database did not answer within 0.5 s: is it running, "
        "and is that its address? (--db-timeout sets the wait)",
    )


def test_a_database_that_refuses_the_connection_is_said_to_be_the_database(
    tmp_path: Path,
) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql+asyncpg://rawws:pw-not-shown@127.0.0.1:{port}/rawws"
    assert_said(
        refused(tmp_path, "--db", url),
        f"rawws: --db postgresql+asyncpg://rawws:***@127.0.0.1:{port}/rawws: cannot reach the database at "
        f"127.0.0.1:{port} (Connection refused): is it running there?",
    )


@pytest.mark.parametrize(
    ("query", "line"),
    [
        (
            "sslpassword=pw-not-shown",
            "asyncpg takes no parameter 'sslpassword': the URL's query parameters are "
            "asyncpg.connect()'s (ssl, command_timeout, …)",
        ),
        (
            "sslmode=require",
            "asyncpg takes no parameter 'sslmode': for TLS, write ssl=require (asyncpg's name for it)",
        ),
    ],
)
def test_a_parameter_the_driver_does_not_take_is_named(
    tmp_path: Path, query: str, line: str
) -> None:
    """Found by hand: asyncpg's TypeError was a 20-line traceback, after a wait for nothing."""
    url = f"postgresql+asyncpg://rawws:pw-not-shown@127.0.0.1:{free_port()}/rawws"
    shown = f"{url}?{query}".replace("pw-not-shown", "***")
    assert_said(
        refused(tmp_path, "--db", f"{url}?{query}"), f"rawws: --db {shown}: {line}"
    )


def test_a_role_that_does_not_exist(
    tmp_path: Path, postgres_cluster: PostgresCluster
) -> None:
    role = f"nobody_{secrets.token_hex(3)}"
    url = f"postgresql+asyncpg://{role}@{postgres_cluster.host}:{postgres_cluster.port}/postgres"
    assert_said(
        refused(tmp_path, "--db", url),
        f'rawws: --db {url}: role "{role}" does not exist: create it (CREATE ROLE {role} LOGIN) or name an '
        "existing role in the URL",
    )


def test_a_database_that_does_not_exist(
    tmp_path: Path, postgres_cluster: PostgresCluster
) -> None:
    database = f"nothing_{secrets.token_hex(3)}"
    url = postgres_cluster.url(database)
    assert_said(
        refused(tmp_path, "--db", url),
        f'rawws: --db {url}: database "{database}" does not exist: create it (CREATE DATABASE {database} OWNER '
        f"{postgres_cluster.user}) or name an existing one in the URL",
    )


async def admin(
    cluster: PostgresCluster, database: str = "postgres"
) -> asyncpg.Connection:
    return await asyncpg.connect(
        host=cluster.host, port=cluster.port, user=cluster.user, database=database
    )


async def test_a_role_that_may_not_create_the_schema(
    tmp_path: Path, postgres_cluster: PostgresCluster
) -> None:
    role, database = f"weak_{secrets.token_hex(3)}", f"owned_{secrets.token_hex(3)}"
    connection = await admin(postgres_cluster)
    try:
        await connection.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw-not-shown'")
        await connection.execute(
            f"CREATE DATABASE {database}"
        )  # owned by the superuser, not the role
    finally:
        await connection.close()
    connection = await admin(postgres_cluster, database)
    try:  # PostgreSQL 15 gives PUBLIC no CREATE on public already; older ones did
        await connection.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    finally:
        await connection.close()
    where = f"{postgres_cluster.host}:{postgres_cluster.port}/{database}"
    outcome = await ended(
        await spawn_serve(
            tmp_path, "--db", f"postgresql+asyncpg://{role}:pw-not-shown@{where}"
        )
    )
    assert_said(
        outcome,
        f"rawws: --db postgresql+asyncpg://{role}:***@{where}: permission denied for schema public: rawws creates "
        f"its tables at start; make {role} the database's owner (ALTER DATABASE {database} OWNER TO {role}) or "
        f"GRANT CREATE ON SCHEMA public TO {role}",
    )


# -- Ctrl-C while it starts -------------------------------------------------------------------


async def interrupt(
    process: asyncio.subprocess.Process, sig: signal.Signals = signal.SIGINT
) -> Outcome:
    process.send_signal(sig)
    return await ended(process)


async def until(condition_met: object, what: str) -> None:
    """Poll ``condition_met()`` (sync or async) until true, within ``WAIT_S``."""
    deadline = time.monotonic() + WAIT_S
    while True:
        met = condition_met()  # type: ignore[operator]
        if asyncio.iscoroutine(met):
            met = await met
        if met:
            return
        assert time.monotonic() < deadline, f"never saw {what}"
        await asyncio.sleep(0.02)


def loading_modules(pid: int) -> bool:
    """The interpreter is importing rawws's modules: a compiled one (SQLAlchemy's, rawws's own) is mapped."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
    return any(
        line.endswith(".so") and ("site-packages" in line or "/rawws/" in line)
        for line in maps.splitlines()
    )


async def test_ctrl_c_while_it_loads_its_modules(
    tmp_path: Path, silent: Silent
) -> None:
    """As early as can be told from outside; wherever it lands from there on, the answer is the same line."""
    process = await spawn_serve(
        tmp_path, "--db", f"postgresql+asyncpg://rawws@127.0.0.1:{silent.port}/rawws"
    )
    await until(lambda: loading_modules(process.pid), "the modules loading")
    assert_said(await interrupt(process), INTERRUPTED, code=130)


async def test_ctrl_c_while_the_database_does_not_answer(
    tmp_path: Path, silent: Silent
) -> None:
    process = await spawn_serve(
        tmp_path,
        "--db",
        f"postgresql+asyncpg://rawws@127.0.0.1:{silent.port}/rawws",
        "--db-timeout",
        "600",
    )
    await asyncio.wait_for(silent.accepted.wait(), WAIT_S)
    assert_said(await interrupt(process), INTERRUPTED, code=130)


async def test_sigterm_while_starting_is_a_stop_as_asked(
    tmp_path: Path, silent: Silent
) -> None:
    process = await spawn_serve(
        tmp_path,
        "--db",
        f"postgresql+asyncpg://rawws@127.0.0.1:{silent.port}/rawws",
        "--db-timeout",
        "600",
    )
    await asyncio.wait_for(silent.accepted.wait(), WAIT_S)
    assert_said(
        await interrupt(process, signal.SIGTERM),
        "rawws: interrupted by SIGTERM while starting; nothing was served",
        code=0,
    )


async def test_ctrl_c_while_the_schema_is_created(
    tmp_path: Path, postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    """Another transaction creating the first table holds rawws's CREATE TABLE: the start is caught mid-schema.
    After the Ctrl-C rawws's connection is gone (its query cancelled, not left waiting) and no table stays."""
    database = postgres_url.rsplit("/", 1)[1]
    blocker, watcher = (
        await admin(postgres_cluster, database),
        await admin(postgres_cluster, database),
    )
    others = f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}' AND pid <> ALL($1::int[])"
    mine = [blocker.get_server_pid(), watcher.get_server_pid()]
    try:
        holding = blocker.transaction()
        await holding.start()
        await blocker.execute("CREATE TABLE schema_version (version integer NOT NULL)")
        process = await spawn_serve(tmp_path, "--db", postgres_url)

        async def waiting_on_the_lock() -> bool:
            return bool(
                await watcher.fetchval(others + " AND wait_event_type = 'Lock'", mine)
            )

        await until(waiting_on_the_lock, "rawws waiting to create its table")
        assert_said(await interrupt(process), INTERRUPTED, code=130)

        async def rawws_gone() -> bool:
            return await watcher.fetchval(others, mine) == 0

        await until(rawws_gone, "rawws's connection closed")
        await holding.rollback()
        assert (
            await watcher.fetchval(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            )
            == 0
        )
    finally:
        await blocker.close()
        await watcher.close()


async def test_ctrl_c_while_the_bus_does_not_answer(
    tmp_path: Path, silent: Silent
) -> None:
    process = await spawn_serve(
        tmp_path,
        "--bus",
        f"redis://127.0.0.1:{silent.port}/0",
        env={"RAWWS_BUS_TIMEOUT_S": "600"},
    )
    await asyncio.wait_for(
        silent.accepted.wait(), WAIT_S
    )  # the store (SQLite) is open: the bus is next
    assert_said(await interrupt(process), INTERRUPTED, code=130)


async def test_a_bus_that_never_answers_is_named(
    tmp_path: Path, silent: Silent
) -> None:
    url = f"redis://127.0.0.1:{silent.port}/0"
    outcome = await ended(
        await spawn_serve(tmp_path, "--bus", url, env={"RAWWS_BUS_TIMEOUT_S": "0.2"})
    )
    assert_said(
        outcome,
        f"rawws: --bus {url}: cannot reach the bus: it did not answer within 0.2 s: is Redis "
        "running there?",
    )
