"""Accounts that can be stopped, on a real server (SQLite file, then PostgreSQL where it says):
logout and password change stop the access tokens and tickets issued before them, at
``/auth/ticket`` and at the upgrade (401 before any 101), and close the connections they
opened (1008); a disabled account's logins, refreshes and connections are refused.
"""

from __future__ import annotations

import asyncio

from rawws.cli.admin import admin_command
from rawws.server.server import Server
from tests.conftest import StartServer
from tests.support.chat_client import connect_chat
from tests.support.helpers import (
    PASSWORD,
    TIMEOUT_S,
    http,
    login,
    raw_upgrade_status,
    register,
    ticket,
)

NEW_PASSWORD = "c0rrect-h0rse-battery-staple"


async def session(server: Server, user: str = "Ada") -> dict:
    """Register ``user`` and log in: the login's JSON (access and refresh tokens)."""
    assert (await register(server.port, user)).status == 201
    reply = await login(server.port, user)
    assert reply.status == 200, reply.body
    return reply.json


async def upgrade_with_token(server: Server, token: str) -> int:
    return (await raw_upgrade_status(server.port, f"/ws?token={token}"))[0]


async def upgrade_with_ticket(server: Server, access_token: str) -> int:
    reply = await ticket(server.port, access_token)
    assert reply.status == 200, reply.body
    return (
        await raw_upgrade_status(server.port, f"/ws?ticket={reply.json['ticket']}")
    )[0]


async def closed_with(client, timeout: float = TIMEOUT_S) -> tuple[int | None, str]:
    await asyncio.wait_for(client.ws.wait_closed(), timeout)
    return client.ws.close_code, client.ws.close_reason or ""


async def admin(*argv: str) -> int:
    """`rawws admin ARGV` in-process (its own event loop, in a thread), the exit code."""
    return await asyncio.to_thread(admin_command, ["admin", *argv])


async def logout(server: Server, refresh_token: str) -> dict:
    reply = await http(
        server.port, "POST", "/auth/logout", {"refresh_token": refresh_token}
    )
    assert reply.status == 200, reply.body
    return reply.json


async def test_logout_stops_the_tokens_and_tickets_issued_before_it(
    start_server: StartServer,
) -> None:
    server = await start_server()
    first = await session(server)
    old = first["access_token"]
    ticket_before = (await ticket(server.port, old)).json["ticket"]
    assert await upgrade_with_token(server, old) == 101
    connection = await connect_chat(server, old, "Ada")

    assert (await logout(server, first["refresh_token"])) == {"revoked": True}

    assert await closed_with(connection) == (1008, "signed out")
    assert server.counters.account_stop_closes == 1
    refused = await ticket(server.port, old)
    assert refused.status == 401 and "revoked" in refused.json["error"]["message"]
    assert await upgrade_with_token(server, old) == 401
    status, _ = await raw_upgrade_status(server.port, f"/ws?ticket={ticket_before}")
    assert status == 401
    # A login right after (the same second, most likely) is a new token: it works.
    again = (await login(server.port, "Ada")).json
    assert await upgrade_with_ticket(server, again["access_token"]) == 101
    assert await upgrade_with_token(server, again["access_token"]) == 101
    assert (await logout(server, first["refresh_token"])) == {"revoked": False}
    assert await upgrade_with_token(server, again["access_token"]) == 101


async def test_a_password_change_stops_every_earlier_token_and_its_connection(
    start_server: StartServer, db_url: str | None
) -> None:
    server = await start_server(db_url=db_url)
    phone = await session(server)
    laptop = (await login(server.port, "Ada")).json
    connection = await connect_chat(server, laptop["access_token"], "Ada")
    reply = await http(
        server.port,
        "POST",
        "/auth/password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers={"Authorization": f"Bearer {phone['access_token']}"},
    )
    assert reply.status == 200, reply.body

    assert await closed_with(connection) == (1008, "signed out")
    for token in (phone["access_token"], laptop["access_token"]):
        assert (await ticket(server.port, token)).status == 401
        assert await upgrade_with_token(server, token) == 401
    # The caller's own login refreshes for a token that works; the other login is gone.
    fresh = await http(
        server.port, "POST", "/auth/refresh", {"refresh_token": phone["refresh_token"]}
    )
    assert fresh.status == 200
    assert await upgrade_with_ticket(server, fresh.json["access_token"]) == 101
    other = await http(
        server.port, "POST", "/auth/refresh", {"refresh_token": laptop["refresh_token"]}
    )
    assert other.status == 401


async def test_a_disabled_account_is_refused_everywhere_until_enabled(
    start_server: StartServer, tmp_path, capsys
) -> None:
    data_dir = tmp_path / "data"
    server = await start_server(data_dir=str(data_dir))
    ada = await session(server)
    connection = await connect_chat(server, ada["access_token"], "Ada")
    code = await admin("disable", "ada", "--data-dir", str(data_dir))
    assert code == 0, capsys.readouterr().err

    assert await closed_with(connection) == (1008, "account disabled")
    refused = await login(server.port, "Ada")
    assert refused.status == 403
    assert refused.json["error"]["code"] == "account_disabled"
    wrong = await login(server.port, "Ada", "not-the-password-at-all")
    assert (
        wrong.status == 401 and "code" not in wrong.json["error"]
    )  # a guesser learns nothing
    refresh = await http(
        server.port, "POST", "/auth/refresh", {"refresh_token": ada["refresh_token"]}
    )
    assert refresh.status == 401
    assert (await ticket(server.port, ada["access_token"])).status == 401
    assert await upgrade_with_token(server, ada["access_token"]) == 401

    assert await admin("enable", "Ada", "--data-dir", str(data_dir)) == 0
    await asyncio.sleep(0.05)
    back = await login(server.port, "Ada")
    assert back.status == 200
    assert await upgrade_with_ticket(server, back.json["access_token"]) == 101


async def test_admin_is_granted_on_the_machine_only_and_mistakes_are_one_line(
    start_server: StartServer, tmp_path, capsys
) -> None:
    data_dir = tmp_path / "data"
    server = await start_server(data_dir=str(data_dir))
    await session(server)
    flags = ["--data-dir", str(data_dir)]
    assert await admin("grant", "ADA", *flags) == 0
    assert await admin("list", *flags) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "Ada\tadmin"
    assert await admin("revoke", "ada", *flags) == 0
    capsys.readouterr()
    for argv, said in (
        (["admin", "disable", "nobody", *flags], "no user 'nobody'"),
        (["admin", "frob", "ada", *flags], "invalid choice: 'frob'"),
        (["admin", "disable", *flags], "disable needs a USER"),
        (["admin", "list", "--db", "mysql://x/y"], "--db mysql://x/y: unsupported"),
        (["admin", "list", "--no-such-flag"], "--no-such-flag: not understood"),
    ):
        assert await admin(*argv[1:]) == 1
        err = capsys.readouterr().err
        assert (
            err.startswith("rawws: ") and said in err and len(err.splitlines()) == 1
        ), err
