"""Sessions that last: refresh tokens (rotation, reuse detection), logout, password change, tickets across a
restart, outside identities in their own namespace, and the store outage answer, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path

import jwt
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from rawws.server.server import Server
from rawws.store import sqlite_url
from tests.conftest import StartServer
from tests.support.chat_client import connect_chat
from tests.support.helpers import (
    PASSWORD,
    Reply,
    claims,
    http,
    login,
    raw_upgrade_status,
    register,
    rsa_private_pem,
    rsa_public_pem,
    ticket,
)


async def refresh(port: int, token: str) -> Reply:
    return await http(port, "POST", "/auth/refresh", {"refresh_token": token})


async def logout(port: int, token: str) -> Reply:
    return await http(port, "POST", "/auth/logout", {"refresh_token": token})


async def change_password(port: int, access: str, current: str, new: str) -> Reply:
    return await http(
        port,
        "POST",
        "/auth/password",
        {"current_password": current, "new_password": new},
        headers={"Authorization": f"Bearer {access}"},
    )


async def signed_in(port: int, username: str = "Ada") -> dict[str, object]:
    reply = await login(port, username)
    assert reply.status == 200, reply.body
    return reply.json


@pytest.fixture
async def server(start_server: StartServer, db_url: str | None) -> Server:
    server = await start_server(db_url=db_url)
    assert (await register(server.port, "Ada")).status == 201
    return server


async def stored_rows(server: Server) -> list[sa.Row[tuple[object, ...]]]:
    engine = create_async_engine(
        server.config.db_url or sqlite_url(server.config.data_dir)
    )
    try:
        async with engine.connect() as conn:
            return list(
                (await conn.execute(sa.text("SELECT * FROM refresh_tokens"))).fetchall()
            )
    finally:
        await engine.dispose()


# -- refresh tokens -----------------------------------------------------------------


async def test_refresh_rotates_and_each_token_is_single_use(server: Server) -> None:
    first = await signed_in(server.port)
    assert first["refresh_expires_in"] == server.config.refresh_ttl_s == 30 * 24 * 3600
    renewed = await refresh(server.port, str(first["refresh_token"]))
    assert renewed.status == 200, renewed.body
    assert renewed.headers["cache-control"] == "no-store"
    body = renewed.json
    assert set(body) == {
        "user",
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_expires_in",
    }
    assert body["refresh_token"] != first["refresh_token"]  # rotated
    assert (
        body["user"] == "Ada"
    )  # as registered: a page signed in by its cookie learns who it is
    assert (
        jwt.decode(str(body["access_token"]), options={"verify_signature": False})[
            "sub"
        ]
        == "Ada"
    )
    # The new access token works where the old one did.
    assert (await ticket(server.port, str(body["access_token"]))).status == 200
    # The successor rotates again.
    assert (await refresh(server.port, str(body["refresh_token"]))).status == 200


async def test_refresh_tokens_are_stored_as_sha256_only(server: Server) -> None:
    first = await signed_in(server.port)
    token = str(first["refresh_token"])
    rows = await stored_rows(server)
    assert len(rows) == 1
    assert rows[0].token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(rows)


async def test_a_replayed_refresh_token_revokes_its_whole_family(
    server: Server,
) -> None:
    """RFC 9700 §4.14.2: a spent refresh token presented again revokes every token of that login."""
    stolen = str((await signed_in(server.port))["refresh_token"])
    legitimate = (
        await refresh(server.port, stolen)
    ).json  # the user refreshes; the thief still holds `stolen`
    other_login = await signed_in(
        server.port
    )  # another device of the same user: a different family

    replay = await refresh(server.port, stolen)
    assert replay.status == 401
    assert "already used" in replay.error
    # The legitimate holder's current token is revoked with the family: the thief's copy is worthless too.
    after = await refresh(server.port, str(legitimate["refresh_token"]))
    assert after.status == 401
    assert "already used" not in after.error
    # Another login of the same user is untouched.
    assert (await refresh(server.port, str(other_login["refresh_token"]))).status == 200


async def test_unknown_or_malformed_refresh_tokens_are_401(server: Server) -> None:
    for token in ("", "x" * 200, "not-a-token-we-issued"):
        reply = await refresh(server.port, token)
        assert reply.status == 401, token
    reply = await http(server.port, "POST", "/auth/refresh", {"refresh_token": 42})
    assert reply.status == 401


async def test_an_expired_refresh_token_is_refused(start_server: StartServer) -> None:
    server = await start_server(refresh_ttl_s=1.0)
    await register(server.port, "Ada")
    token = str((await signed_in(server.port))["refresh_token"])
    engine = create_async_engine(sqlite_url(server.config.data_dir))
    try:  # age it instead of sleeping
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("UPDATE refresh_tokens SET expires_at = expires_at - 10")
            )
    finally:
        await engine.dispose()
    assert (await refresh(server.port, token)).status == 401


async def test_logout_revokes_the_login(server: Server) -> None:
    session = await signed_in(server.port)
    token = str(session["refresh_token"])
    renewed = str((await refresh(server.port, token)).json["refresh_token"])
    out = await logout(server.port, renewed)
    assert out.status == 200 and out.json == {"revoked": True}
    assert (await refresh(server.port, renewed)).status == 401
    assert (await logout(server.port, "never-issued")).json == {
        "revoked": False
    }  # idempotent, no oracle beyond it


async def test_password_change_revokes_every_other_login(server: Server) -> None:
    here = await signed_in(server.port)
    elsewhere = await signed_in(server.port)
    new_password = "C0rrect-horse-battery"
    wrong = await change_password(
        server.port, str(here["access_token"]), "not-the-Passw0rd", new_password
    )
    assert wrong.status == 401
    changed = await change_password(
        server.port, str(here["access_token"]), PASSWORD, new_password
    )
    assert changed.status == 200, changed.body
    assert changed.json == {"other_sessions_revoked": 1}
    assert (await refresh(server.port, str(elsewhere["refresh_token"]))).status == 401
    assert (
        await refresh(server.port, str(here["refresh_token"]))
    ).status == 200  # this login goes on
    assert (await login(server.port, "Ada")).status == 401
    assert (await login(server.port, "Ada", new_password)).status == 200


async def test_password_change_checks_the_new_password(server: Server) -> None:
    here = await signed_in(server.port)
    weak = await change_password(
        server.port, str(here["access_token"]), PASSWORD, "short"
    )
    assert weak.status == 400
    assert (await login(server.port, "Ada")).status == 200


# -- tickets ----------------------------------------------------------------------------


async def test_a_spent_ticket_stays_spent_after_a_restart(
    start_server: StartServer, db_url: str | None
) -> None:
    first = await start_server(db_url=db_url)
    await register(first.port, "Ada")
    access = str((await signed_in(first.port))["access_token"])
    issued = str((await ticket(first.port, access)).json["ticket"])
    assert (await raw_upgrade_status(first.port, f"/ws?ticket={issued}"))[0] == 101
    assert (await raw_upgrade_status(first.port, f"/ws?ticket={issued}"))[0] == 401
    await first.shutdown()

    second = await start_server(
        db_url=db_url, data_dir=first.config.data_dir
    )  # same secret, same database
    status, headers = await raw_upgrade_status(second.port, f"/ws?ticket={issued}")
    assert status == 401
    fresh = str((await ticket(second.port, access)).json["ticket"])
    assert (await raw_upgrade_status(second.port, f"/ws?ticket={fresh}"))[0] == 101


async def test_tickets_per_user_are_limited(start_server: StartServer) -> None:
    server = await start_server(tickets_per_minute_per_user=3)
    await register(server.port, "Ada")
    access = str((await signed_in(server.port))["access_token"])
    statuses = [(await ticket(server.port, access)).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = await ticket(server.port, access)
    assert (
        limited.headers["retry-after"].isdigit()
        and int(limited.headers["retry-after"]) >= 1
    )


async def test_registrations_per_address_are_limited(start_server: StartServer) -> None:
    server = await start_server(registrations_per_hour_per_address=2)
    statuses = [(await register(server.port, f"user{n}")).status for n in range(3)]
    assert statuses == [201, 201, 429]
    assert (
        int((await register(server.port, "user9")).headers["retry-after"]) > 60
    )  # refilled over an hour
    assert (
        await login(server.port, "user9")
    ).status == 401  # the refused one was not created


# -- outside identities ---------------------------------------------------------------------


async def test_an_outside_providers_user_is_not_the_local_account_of_that_name(
    start_server: StartServer, tmp_path: Path
) -> None:
    key_file = tmp_path / "idp.pem"
    key_file.write_bytes(rsa_public_pem())
    server = await start_server(
        jwt_public_key=str(key_file), jwt_public_algorithm="RS256"
    )
    await register(server.port, "grace")
    now = __import__("time").time()
    outside = jwt.encode(
        claims(now, typ=None, sub="grace"), rsa_private_pem(), algorithm="RS256"
    )

    issued = await ticket(server.port, outside)
    assert issued.status == 200
    assert (
        jwt.decode(issued.json["ticket"], options={"verify_signature": False})["sub"]
        == "ext:grace"
    )
    # It cannot act as the local grace: no password to change, no session of hers to touch.
    changed = await change_password(
        server.port, outside, PASSWORD, "C0rrect-horse-battery"
    )
    assert changed.status == 403
    assert (
        await login(server.port, "grace")
    ).status == 200  # the local password is unchanged


# -- a store outage -------------------------------------------------------------------------


async def test_a_postgresql_outage_is_503_with_retry_after_and_two_log_lines(
    start_server: StartServer, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncpg

    server = await start_server(db_url=postgres_url)
    assert (await register(server.port, "Ada")).status == 201
    ada = await connect_chat(
        server, str((await signed_in(server.port))["access_token"]), "Ada"
    )
    await ada.join("lobby")
    url = sa.engine.make_url(postgres_url)
    admin = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database="postgres"
    )
    try:
        await admin.execute(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            url.database,
        )
        caplog.set_level(logging.INFO, logger="rawws.store")
        refused = [await login(server.port, "Ada") for _ in range(2)]
        await ada.say(
            "lobby", "during the outage", ref="down"
        )  # the chat side: `unavailable`, as before
        assert (await ada.wait_frame("error", ref="down"))["code"] == "unavailable"
        refused.append(await login(server.port, "Ada"))
        assert [reply.status for reply in refused] == [503, 503, 503]
        assert all(reply.headers["retry-after"].isdigit() for reply in refused)
        assert "unavailable" in refused[0].error
    finally:
        await admin.execute(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS true')
        await admin.close()
    assert (await login(server.port, "Ada")).status == 200
    await ada.say("lobby", "after it", ref="up")
    assert (await ada.wait_ack("up"))["id"] == 2  # after ada's joined (1)
    await ada.close()
    # The outage ends once the store has stayed up a while (a flapping store is one
    # outage, rawws.store.outage): /readyz's probe, polled as a load balancer would, ends it.
    for _ in range(200):
        if (await http(server.port, "GET", "/readyz")).status == 200:
            break
        await asyncio.sleep(0.1)
    lines = [record for record in caplog.records if record.name == "rawws.store"]
    assert len(lines) == 2, [record.getMessage() for record in lines]
    assert "unavailable" in lines[0].getMessage()
    assert (
        "available again" in lines[1].getMessage()
        and "4 operation(s) refused" in lines[1].getMessage()
    )
    assert all(record.exc_info is None for record in caplog.records)  # no traceback


# -- the terminal client renews without the password ----------------------------------------


async def test_rawws_chat_renews_its_access_token_with_the_refresh_token(
    server: Server,
) -> None:
    from rawws.chatclient.chat_login import ChatLogin
    from rawws.chatclient.target import chat_target

    client = ChatLogin(
        chat_target(f"ws://127.0.0.1:{server.port}/ws"), "Ada", PASSWORD, 10.0, False
    )
    assert (
        await raw_upgrade_status(server.port, f"/ws?ticket={await client.ticket()}")
    )[0] == 101
    assert (client.logins, client.refreshes) == (1, 0)
    first_refresh = client._refresh_token
    assert first_refresh is not None

    client._password = "no-longer-the-Passw0rd"  # a login now would fail: only the refresh token can work
    client._expires_at = 0.0  # the access token is about to expire
    assert (
        await raw_upgrade_status(server.port, f"/ws?ticket={await client.ticket()}")
    )[0] == 101
    assert (client.logins, client.refreshes) == (1, 1)
    assert client._refresh_token not in (None, first_refresh)  # rotated
    assert (
        await refresh(server.port, first_refresh)
    ).status == 401  # and the old one is spent
