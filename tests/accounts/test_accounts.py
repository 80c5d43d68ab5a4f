"""`POST /auth/register`, `/auth/login`, `/auth/ticket` on a real server, over real sockets.

The account flow runs against SQLite and PostgreSQL. Also here: hashing runs
off the event loop (other requests keep being answered while logins hash),
and no password, token, ticket or query string ever reaches a log record.
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections.abc import Iterator
from urllib.parse import quote

import jwt
import pytest

from rawws.server.server import Server
from testkit import masked_frame
from tests.conftest import StartServer
from tests.support.helpers import (
    PASSWORD,
    TIMEOUT_S,
    http,
    login,
    open_raw,
    raw_upgrade_status,
    read_frame,
    read_http_head,
    register,
    registered_token,
    ticket,
    upgrade_request,
)

TEXT, CLOSE = 0x1, 0x8


# -- servers on either database --------------------------------------------------


@pytest.fixture
async def server(start_server: StartServer, db_url: str | None) -> Server:
    return await start_server(db_url=db_url)


# -- the flow ----------------------------------------------------------------------


async def test_register_login_ticket(server: Server) -> None:
    registered = await register(server.port, "Ada")
    assert registered.status == 201
    assert registered.headers["content-type"] == "application/json"
    assert registered.json["username"] == "Ada"
    assert isinstance(registered.json["id"], int)
    assert registered.json["created_at"]
    assert (
        "password" not in registered.body.decode()
        and PASSWORD not in registered.body.decode()
    )

    logged_in = await login(
        server.port, "ada"
    )  # names are case-insensitive; the token names the user as registered
    assert logged_in.status == 200
    assert logged_in.headers["cache-control"] == "no-store"  # RFC 6749 §5.1
    body = logged_in.json
    assert body["token_type"] == "bearer"
    assert (
        isinstance(body["expires_in"], int)
        and 0 < body["expires_in"] <= server.config.access_ttl_s
    )
    assert set(body) == {
        "user",
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_expires_in",
    }
    assert body["refresh_expires_in"] == server.config.refresh_ttl_s
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == "Ada"
    assert {"exp", "iat", "iss", "aud", "jti"} <= claims.keys()

    issued = await ticket(server.port, body["access_token"])
    assert issued.status == 200
    assert issued.headers["cache-control"] == "no-store"
    assert set(issued.json) == {"ticket", "expires_in"}
    assert 0 < issued.json["expires_in"] <= server.config.ticket_ttl_s
    ticket_claims = jwt.decode(
        issued.json["ticket"], options={"verify_signature": False}
    )
    assert ticket_claims["sub"] == "Ada" and ticket_claims["typ"] == "ticket"


async def test_duplicate_name_is_409_regardless_of_case(server: Server) -> None:
    assert (await register(server.port, "Grace")).status == 201
    for name in ("Grace", "grace", "GRACE"):
        duplicate = await register(server.port, name, "another-Passw0rd")
        assert duplicate.status == 409
        assert "taken" in duplicate.error
    # The first registration's password is still the one that works.
    assert (await login(server.port, "grace", "another-Passw0rd")).status == 401
    assert (await login(server.port, "grace")).status == 200


async def test_unknown_user_and_wrong_password_get_identical_401s(
    server: Server,
) -> None:
    await register(server.port, "Ada")
    unknown = await login(server.port, "nobody-here", PASSWORD)
    wrong = await login(server.port, "Ada", "not-the-Passw0rd")
    assert unknown.status == wrong.status == 401
    assert unknown.body == wrong.body  # nothing tells an attacker which names exist
    assert unknown.headers == wrong.headers


async def test_concurrent_registrations_of_one_name_one_201(server: Server) -> None:
    spellings = ["Linus", "linus", "LINUS", "liNUS"]
    replies = await asyncio.wait_for(
        asyncio.gather(*(register(server.port, n) for n in spellings)), 4 * TIMEOUT_S
    )
    assert sorted(reply.status for reply in replies) == [201, 409, 409, 409]


# -- refusals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"username": "ab", "password": PASSWORD}, "username"),  # too short
        ({"username": "a" * 33, "password": PASSWORD}, "username"),  # too long
        (
            {"username": "_ada", "password": PASSWORD},
            "username",
        ),  # must start with a letter or digit
        ({"username": "ada lovelace", "password": PASSWORD}, "username"),
        ({"username": "adé", "password": PASSWORD}, "username"),
        ({"username": 42, "password": PASSWORD}, "username"),
        ({"password": PASSWORD}, "username"),
        ({"username": "ada", "password": "short1!"}, "at least"),
        ({"username": "ada", "password": "x" * 257}, "at most"),
        (
            {"username": "ada", "password": "aaaaaaaaaaaa"},
            "easy",
        ),  # fewer than 4 distinct characters
        (
            {"username": "Ada.L", "password": "ada.l"},
            None,
        ),  # the name itself (and too short)
        ({"username": "adalovelace", "password": "ADALOVELACE"}, "easy"),
        ({"username": "ada", "password": 12345678}, "password"),
        ({"username": "ada"}, "password"),
    ],
)
async def test_register_refuses_weak_or_invalid_input_with_400(
    start_server: StartServer, payload: dict, reason: str | None
) -> None:
    server = await start_server()
    reply = await http(server.port, "POST", "/auth/register", payload)
    assert reply.status == 400
    assert reply.error  # a reason a user can act on
    if reason is not None:
        assert reason in reply.error
    assert (await login(server.port, "ada")).status == 401  # nothing was created


@pytest.mark.parametrize("path", ["/auth/register", "/auth/login"])
@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/jsonx"],
)
async def test_wrong_content_type_is_415(
    start_server: StartServer, path: str, content_type: str | None
) -> None:
    server = await start_server()
    headers = {} if content_type is None else {"Content-Type": content_type}
    reply = await http(
        server.port,
        "POST",
        path,
        body=b'{"username":"ada","password":"x"}',
        headers=headers,
    )
    assert reply.status == 415
    assert "application/json" in reply.error


async def test_json_content_type_with_parameters_is_accepted(
    start_server: StartServer,
) -> None:
    server = await start_server()
    body = json.dumps({"username": "ada", "password": PASSWORD}).encode()
    reply = await http(
        server.port,
        "POST",
        "/auth/register",
        body=body,
        headers={"Content-Type": "Application/JSON; charset=utf-8"},
    )
    assert reply.status == 201


@pytest.mark.parametrize("path", ["/auth/register", "/auth/login"])
@pytest.mark.parametrize(
    "body", [b"{", b"not json", b"", b"\xff\xfe{}", b"[1, 2]", b'"text"', b"null"]
)
async def test_bad_json_is_400(
    start_server: StartServer, path: str, body: bytes
) -> None:
    server = await start_server()
    reply = await http(
        server.port,
        "POST",
        path,
        body=body,
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 400
    assert "JSON" in reply.error


async def test_login_with_non_string_fields_is_400(start_server: StartServer) -> None:
    server = await start_server()
    payloads = (
        {"username": "ada"},
        {"username": ["ada"], "password": "x"},
        {"username": "a" * 65, "password": "x"},
    )
    for payload in payloads:
        reply = await http(server.port, "POST", "/auth/login", payload)
        assert reply.status == 400
        assert reply.error


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_body_over_the_limit_is_413(
    start_server: StartServer, chunked: bool
) -> None:
    server = await start_server(max_body_bytes=1024)
    payload = json.dumps({"username": "ada", "password": "p" * 2000}).encode()
    if (
        chunked
    ):  # no Content-Length to refuse up front: the limit is counted as the body arrives
        body = (
            b"".join(
                b"%x\r\n%s\r\n" % (len(part), part)
                for part in (payload[:700], payload[700:])
            )
            + b"0\r\n\r\n"
        )
        headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    else:
        body, headers = payload, {"Content-Type": "application/json"}
    reply = await http(
        server.port, "POST", "/auth/register", body=body, headers=headers
    )
    assert reply.status == 413


async def test_repeated_failed_logins_are_429_with_retry_after(
    start_server: StartServer,
) -> None:
    server = await start_server(logins_per_minute_per_user=3)
    await register(server.port, "Ada")
    for _ in range(3):
        assert (await login(server.port, "ada", "wrong-Passw0rd")).status == 401
    limited = await login(
        server.port, "ADA", "wrong-Passw0rd"
    )  # the limit is per user, whatever the case
    assert limited.status == 429
    retry_after = limited.headers[
        "retry-after"
    ]  # RFC 6585 §4, as delay-seconds (RFC 9110 §10.2.3)
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60
    # While limited, even the right password is not tried: guessing cannot go on.
    assert (await login(server.port, "ada")).status == 429
    # Other users are not locked out by someone guessing Ada's password.
    await register(server.port, "Grace")
    assert (await login(server.port, "grace")).status == 200


async def test_logins_from_one_address_are_limited_across_names(
    start_server: StartServer,
) -> None:
    server = await start_server(logins_per_minute_per_address=3)
    statuses = [
        (await login(server.port, f"user{n}", "wrong-Passw0rd")).status
        for n in range(4)
    ]
    assert statuses == [401, 401, 401, 429]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic YWRhOnBhc3N3b3Jk",
        "Bearer not.a.token",
        "Bearer eyJhbGciOiJub25lIn0.e30.",
    ],
)
async def test_ticket_needs_a_valid_access_token(
    start_server: StartServer, authorization: str | None
) -> None:
    server = await start_server()
    headers = {} if authorization is None else {"Authorization": authorization}
    reply = await http(server.port, "POST", "/auth/ticket", headers=headers)
    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")  # RFC 6750 §3


async def test_a_ticket_does_not_buy_another_ticket(start_server: StartServer) -> None:
    server = await start_server()
    token = await registered_token(server.port)
    first = await ticket(server.port, token)
    assert first.status == 200
    assert (await ticket(server.port, first.json["ticket"])).status == 401


# -- hashing stays off the event loop --------------------------------------------


async def test_hashing_does_not_stall_the_event_loop(start_server: StartServer) -> None:
    """While a burst of logins hashes at real cost (RFC 9106 §4's second option), other requests are answered.

    Ordering, not timing: many /healthz answers and /echo replies must arrive
    before the first login is answered. A server hashing on its event loop
    could answer next to nothing until its first hash was done.
    """
    logins = 8
    server = await start_server(
        argon2_memory_kib=64 * 1024,
        argon2_time_cost=3,
        argon2_parallelism=4,
        logins_per_minute_per_user=logins,
    )
    assert (await register(server.port, "Ada")).status == 201

    completed = 0  # logins answered so far
    answered_before: dict[str, list[int]] = {
        "healthz": [],
        "echo": [],
    }  # per answer: logins completed by then
    all_done = asyncio.Event()

    async def one_login() -> int:
        nonlocal completed
        reply = await asyncio.wait_for(login(server.port, "Ada"), 120)
        completed += 1
        return reply.status

    async def probe_healthz() -> None:
        while not all_done.is_set():
            reply = await http(server.port, "GET", "/healthz")
            assert reply.status == 200
            answered_before["healthz"].append(completed)

    async def probe_echo() -> None:
        reader, writer = await open_raw(server.port)
        writer.write(upgrade_request("/echo", host=f"127.0.0.1:{server.port}"))
        assert (await read_http_head(reader, TIMEOUT_S))[0] == 101
        n = 0
        while not all_done.is_set():
            n += 1
            writer.write(masked_frame(TEXT, f"ping {n}".encode()))
            opcode, payload, _ = await read_frame(reader, TIMEOUT_S)
            assert (opcode, payload) == (TEXT, f"ping {n}".encode())
            answered_before["echo"].append(completed)
        writer.close()

    login_tasks = [asyncio.create_task(one_login()) for _ in range(logins)]
    probes = [asyncio.create_task(probe_healthz()), asyncio.create_task(probe_echo())]
    try:
        statuses = await asyncio.wait_for(asyncio.gather(*login_tasks), 180)
    finally:
        all_done.set()
        await asyncio.wait_for(asyncio.gather(*probes), TIMEOUT_S)
    assert statuses == [200] * logins  # the logins really did hash (and succeed)
    for probe, completions in answered_before.items():
        before_first = sum(1 for done in completions if done == 0)
        before_last = sum(1 for done in completions if done < logins)
        assert before_first >= 10, (
            f"{probe}: only {before_first} answers before the first login was answered"
        )
        assert before_last >= 3 * logins, (
            f"{probe}: only {before_last} answers while logins were in flight"
        )


# -- nothing secret reaches a log record -----------------------------------------


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def every_log_record() -> Iterator[list[logging.LogRecord]]:
    """Every record of every logger at DEBUG, including loggers that do not propagate or set a level."""
    handler = _Everything()
    root = logging.getLogger()
    loggers = [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    saved = [(logger, logger.level) for logger in [root, *loggers]]
    for logger, _ in saved:
        if logger is root or logger.level != logging.NOTSET:
            logger.setLevel(logging.DEBUG)
    isolated = [logger for logger in loggers if not logger.propagate]
    for logger in [root, *isolated]:
        logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        for logger in [root, *isolated]:
            logger.removeHandler(handler)
        for logger, level in saved:
            logger.setLevel(level)


def rendered(record: logging.LogRecord) -> str:
    """All the text a handler could write for a record: message, arguments, exception and stack."""
    parts = [
        logging.Formatter("%(name)s %(levelname)s %(message)s").format(record),
        repr(record.args),
    ]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(*record.exc_info)))
        parts.append(repr(record.exc_info[1].args))
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


async def test_no_secret_reaches_any_log_record(
    start_server: StartServer, every_log_record: list[logging.LogRecord]
) -> None:
    """README "Accounts and tokens" and "Logging": tokens, query strings and passwords never reach a log line."""
    server = await start_server(logins_per_minute_per_user=3)
    port = server.port
    password, wrong_password, weak_password = (
        "Sesame-0pen-7f3k9",
        "Not-Sesame-q8w2",
        "Zq7!x",
    )

    assert (await register(port, "Ada", password)).status == 201
    assert (await register(port, "Bob", weak_password)).status == 400
    assert (await register(port, "ada", wrong_password)).status == 409
    token = (await login(port, "Ada", password)).json["access_token"]
    assert (await login(port, "Ada", wrong_password)).status == 401
    assert (await login(port, "nobody", wrong_password)).status == 401
    tickets = [(await ticket(port, token)).json["ticket"] for _ in range(2)]
    forged = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    assert (await ticket(port, forged)).status == 401

    attempts = [
        (f"/ws?token={token}", "", 101),
        (f"/ws?ticket={tickets[0]}", "", 101),
        (f"/ws?ticket={tickets[0]}", "", 401),  # replayed
        ("/ws", f"Sec-WebSocket-Protocol: rawws.v1, bearer.{token}\r\n", 101),
        ("/ws", f"Authorization: Bearer {token}\r\n", 101),
        (f"/ws?token={forged}", "", 401),
        ("/ws", f"Sec-WebSocket-Protocol: rawws.v1, bearer.{forged}\r\n", 401),
        ("/ws", f"Authorization: Bearer {forged}\r\n", 401),
        (
            f"/ws?token={token}&marker=query-marker-5j2",
            "Origin: http://evil.example\r\n",
            403,
        ),
        (
            f"/ws?ticket={tickets[1]}",
            "Sec-WebSocket-Version: 8\r\n",
            426,
        ),  # a refused handshake
        (f"/echo?token={token}", "", 101),
    ]
    for target, extra, expected in attempts:
        if target.startswith("/echo"):
            reader, writer = await open_raw(port)
            writer.write(upgrade_request(target, host=f"127.0.0.1:{port}"))
            assert (await read_http_head(reader, TIMEOUT_S))[0] == 101
            writer.close()
            continue
        status, headers = await raw_upgrade_status(port, target, extra)
        assert status == expected, (target, extra)
        assert token not in json.dumps(headers)
    # A plain request with a secret in its query string, and one that is not HTTP at all.
    assert (
        await http(port, "GET", f"/healthz?token={token}&password={quote(password)}")
    ).status == 200
    reader, writer = await open_raw(port)
    writer.write(
        f"GET /ws?token={token} HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".encode()
    )
    await read_http_head(reader, TIMEOUT_S)
    writer.close()
    for _ in range(4):  # into the rate limit
        await login(port, "Ada", wrong_password)
    # A database failure mid-request: logged once at ERROR (the outage's start), with no SQL parameters.
    await drop_users_table(server)
    assert (await register(port, "Carol", password)).status == 503
    await asyncio.sleep(0)

    secrets = {
        "password": password,
        "wrong password": wrong_password,
        "weak password": weak_password,
        "access token": token,
        "token signature": token.rsplit(".", 1)[1],
        "token payload": token.split(".")[1],
        "forged token": forged,
        "query marker": "query-marker-5j2",
        "query string": "token=",
        "ticket query": "ticket=",
        "bearer subprotocol": "bearer.",
        "authorization value": "Bearer ey",
    }
    for n, issued_ticket in enumerate(tickets):
        secrets[f"ticket {n}"] = issued_ticket
        secrets[f"ticket {n} signature"] = issued_ticket.rsplit(".", 1)[1]
    assert len(every_log_record) > 10, (
        "the server logged nothing: the capture is broken"
    )
    assert any(record.name.startswith("rawws") for record in every_log_record)
    leaks = [
        f"{what} in {record.name}:{record.levelname}: {text[:300]!r}"
        for record in every_log_record
        for text in [rendered(record)]
        for what, secret in secrets.items()
        if secret in text
    ]
    # Not on the README's list, but a password hash is what an offline guesser wants: none at INFO or above
    # (at DEBUG, aiosqlite's traces and SQLAlchemy's row dumps show them, when an operator turns those on).
    leaks += [
        f"password hash in {record.name}:{record.levelname}: {text[:300]!r}"
        for record in every_log_record
        if record.levelno >= logging.INFO
        for text in [rendered(record)]
        if "$argon2id$" in text
    ]
    assert not leaks, "\n".join(leaks)


async def drop_users_table(server: Server) -> None:
    """Break the server's SQLite database behind its back."""
    from pathlib import Path

    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    from rawws.store import sqlite_url

    assert Path(server.config.data_dir, "rawws.db").exists()
    engine = create_async_engine(sqlite_url(server.config.data_dir))
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("DROP TABLE users"))
    finally:
        await engine.dispose()
