"""Opening the store: the URL checked, the SQLite file made private, and every way the start can fail said in one line.

A first start on a fresh machine fails in a handful of ways, each of them the
operator's to fix: the role or the database does not exist, the role may not
create the tables, the host refuses the connection, or it takes it and never
answers. The driver tells each apart (PostgreSQL's SQLSTATE, an ``OSError``, a
timeout); ``open_store`` turns them into ``StoreOpenFailed`` with the server's
own words and what to do, the URL's password hidden. Nothing else escapes it
but a bug, ``SchemaTooNew`` and a cancellation.

The whole opening (connecting and making the schema) is bounded by
``timeout_s``, and every later connection by the same (asyncpg's connect
timeout), so a silent port costs that long, not asyncpg's minute.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine

from rawws.config import DEFAULT_DB_TIMEOUT_S
from rawws.core.redact import redact_url
from rawws.errors import StoreOpenFailed
from rawws.store.sql import SqlStore

SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")


def check_db_url(url: str) -> URL:
    """The parsed URL, or ``StoreOpenFailed`` naming what is wrong, before SQLAlchemy tries (and prints 30 lines)."""
    shown = redact_url(url)
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise StoreOpenFailed(
            shown, "not a database URL (e.g. postgresql+asyncpg://user@host/db)"
        ) from None
    driver = parsed.drivername
    if driver in (
        "postgresql",
        "postgres",
        "postgresql+psycopg2",
        "postgresql+psycopg",
    ):
        raise StoreOpenFailed(
            shown, f"{driver}:// is not asynchronous: use postgresql+asyncpg://"
        )
    if driver in ("sqlite", "sqlite+pysqlite"):
        raise StoreOpenFailed(
            shown,
            f"{driver}:// is not asynchronous: use sqlite+aiosqlite:///path/to/rawws.db",
        )
    if driver not in SUPPORTED_DRIVERS:
        raise StoreOpenFailed(
            shown,
            f"unsupported database {driver!r}: use one of {', '.join(SUPPORTED_DRIVERS)}",
        )
    if (
        driver.startswith("postgresql")
        and not parsed.host
        and not parsed.query.get("host")
    ):
        raise StoreOpenFailed(shown, "the PostgreSQL URL names no host")
    if driver == "postgresql+asyncpg" and (unknown := _not_asyncpg_parameters(parsed)):
        hint = (
            "for TLS, write ssl=require (asyncpg's name for it)"
            if unknown[0] == "sslmode"
            else "the URL's query parameters are asyncpg.connect()'s (ssl, command_timeout, …)"
        )
        raise StoreOpenFailed(
            shown, f"asyncpg takes no parameter {unknown[0]!r}: {hint}"
        )
    return parsed


def _not_asyncpg_parameters(parsed: URL) -> list[str]:
    """The URL's parameters that asyncpg's ``connect()`` would refuse with a ``TypeError`` (a traceback)."""
    import asyncpg  # type: ignore[import-untyped]  # only when the URL names it

    # SQLAlchemy passes every query parameter on to asyncpg.connect(), but for two it keeps
    # for its own adapter.
    taken = set(inspect.signature(asyncpg.connect).parameters) | {
        "prepared_statement_cache_size",
        "prepared_statement_name_func",
    }
    return sorted(set(parsed.query) - taken)


# How long a connection waits on a file another one holds, and, while a fresh file
# is switched to WAL, between tries (that switch answers "locked" at once, unheld
# by the busy timeout).
SQLITE_BUSY_MS = 5000
WAL_SWITCH_PAUSE_S = 0.005


def _tune_sqlite(dbapi_connection: Any, _record: object) -> None:
    """WAL lets readers go on while one writer commits; wait rather than fail on a busy file.

    ``secure_delete``: space a row frees (a deleted message's text) is overwritten with
    zeros, so a deletion removes the text from the file, not only from the table.
    """
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """``journal_mode=WAL``, tried again while another connection holds a fresh file.

    Nodes started together on a new database all make this switch at once; SQLite
    refuses all but one with "database is locked" without calling the busy
    handler. Only a fresh file is contended (WAL is kept in the file), so the
    pauses are a few, at start-up, and bounded by the busy timeout.
    """
    tries = int(SQLITE_BUSY_MS / 1000 / WAL_SWITCH_PAUSE_S)
    for attempt in range(tries + 1):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == tries:
                raise
            time.sleep(WAL_SWITCH_PAUSE_S)


def _private_file(path: Path) -> None:
    """The SQLite file (password hashes) is the owner's alone: created 0600 in a 0700 directory.

    SQLite gives its -wal and -shm files the database file's mode.
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


async def open_store(url: str, timeout_s: float = DEFAULT_DB_TIMEOUT_S) -> SqlStore:
    """Connect, create or upgrade the schema within ``timeout_s``, and hand back a ready store.

    ``hide_parameters``: SQL parameters (password hashes among them) stay out of
    SQLAlchemy's log lines and out of its exception text, which rawws logs.
    """
    parsed = check_db_url(url)
    if parsed.drivername.startswith("sqlite"):
        path = parsed.database
        if path and path != ":memory:":
            try:
                _private_file(Path(path))
            except OSError as exc:
                raise StoreOpenFailed(
                    redact_url(url), f"cannot create {path}: {exc.strerror or exc}"
                ) from None
        engine = create_async_engine(url, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
    else:
        engine = create_async_engine(
            url,
            pool_size=10,
            max_overflow=10,
            pool_pre_ping=True,
            hide_parameters=True,
            connect_args={"timeout": timeout_s},
        )
    store = SqlStore(engine)
    try:
        async with asyncio.timeout(timeout_s):
            await store.initialize()
    except BaseException as exc:
        await engine.dispose()
        reason = (
            why_not_opened(exc, parsed, timeout_s)
            if isinstance(exc, Exception)
            else None
        )
        if reason is None:
            raise
        raise StoreOpenFailed(redact_url(url), reason) from None
    return store


# PostgreSQL's SQLSTATEs (Appendix A of its manual) of the mistakes a first start makes.
INVALID_AUTHORIZATION, INVALID_PASSWORD, NO_SUCH_DATABASE, INSUFFICIENT_PRIVILEGE = (
    "28000",
    "28P01",
    "3D000",
    "42501",
)


def why_not_opened(exc: Exception, url: URL, timeout_s: float) -> str | None:
    """What to tell the operator about ``exc`` raised while opening ``url``; ``None`` when it is not the
    database's answer (a bug, to be raised as it is)."""
    if isinstance(exc, TimeoutError):
        return (
            f"the database did not answer within {timeout_s:g} s: is it running, and is that its address? "
            "(--db-timeout sets the wait)"
        )
    causes = list(_causes(exc))
    states = [getattr(cause, "sqlstate", None) for cause in causes]
    sqlstate = next((state for state in states if isinstance(state, str)), None)
    if sqlstate is not None:
        return _postgresql_answer(sqlstate, _server_message(causes), url)
    failure = next((c for c in causes if isinstance(c, OSError)), None)
    if failure is not None:
        where = f"{url.host}:{url.port or 5432}" if url.host else str(url.database)
        if isinstance(failure, socket.gaierror):
            return f"cannot resolve the database host {url.host} ({failure.strerror})"
        said = os.strerror(failure.errno) if failure.errno else str(failure)
        return f"cannot reach the database at {where} ({said}): is it running there?"
    if isinstance(exc, sa.exc.SQLAlchemyError):
        said = _server_message(causes)
        if url.drivername.startswith("sqlite"):
            return (
                f"{url.database}: {said}: is it a rawws database this user may write?"
            )
        return said
    return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, the driver's error SQLAlchemy wraps (``orig``) and what each was raised from."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        pending += [
            orig if isinstance(orig, BaseException) else None,
            current.__cause__,
            current.__context__,
        ]


def _server_message(causes: list[BaseException]) -> str:
    """The driver's own first line (asyncpg's: the server's words), not SQLAlchemy's wrapping of it."""
    native = next(
        (c for c in causes if type(c).__module__.startswith(("asyncpg", "sqlite3"))),
        None,
    )
    chosen = native or next(
        (c for c in causes if getattr(c, "orig", None) is None), causes[0]
    )
    text = str(chosen.args[0]) if chosen.args else str(chosen)
    return (text.splitlines() or [type(chosen).__name__])[0]


def _postgresql_answer(sqlstate: str, said: str, url: URL) -> str:
    user, database = url.username or "(your user)", url.database or "(the database)"
    if sqlstate == INVALID_AUTHORIZATION and "does not exist" in said:
        return f"{said}: create it (CREATE ROLE {user} LOGIN) or name an existing role in the URL"
    if sqlstate == INVALID_AUTHORIZATION:
        return f"{said}: the server's pg_hba.conf does not let this user in from here"
    if sqlstate == INVALID_PASSWORD:
        return f"{said}: check the user and the password in the URL"
    if sqlstate == NO_SUCH_DATABASE:
        return f"{said}: create it (CREATE DATABASE {database} OWNER {user}) or name an existing one in the URL"
    if sqlstate == INSUFFICIENT_PRIVILEGE:
        return (
            f"{said}: rawws creates its tables at start; make {user} the database's owner "
            f"(ALTER DATABASE {database} OWNER TO {user}) or GRANT CREATE ON SCHEMA public TO {user}"
        )
    return f"{said} (SQLSTATE {sqlstate})"
