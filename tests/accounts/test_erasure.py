"""Account erasure on a real server (SQLite file and PostgreSQL): `POST /auth/erase` and
`rawws admin erase`.

What must hold (issue 22 item 5): with the right password every message of the user is
redacted as a deletion, and each ``deleted`` event reaches every member connected in the
room, in id order; ``history`` shows tombstones; the text is gone from the database (the
SQLite files, a ``pg_dump``); the user's connection closes (1008), their login and
refresh fail; the name stays taken (409) until the quarantine is over, then registers
again. A wrong password changes nothing. An admin's erasure does the same to the store.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest

from rawws.server.server import Server
from rawws.store import open_store, sqlite_url
from rawws.store.erasure import QUARANTINE_S
from tests.accounts.test_account_stops import admin, closed_with
from tests.conftest import StartServer
from tests.store.test_edits import PADDING
from tests.support.chat_client import ChatClient, connect_chat
from tests.support.helpers import PASSWORD, Reply, http, login, register
from tests.support.postgres import dump_database


async def erase(port: int, access: str, password: str = PASSWORD) -> Reply:
    return await http(
        port,
        "POST",
        "/auth/erase",
        {"password": password},
        headers={"Authorization": f"Bearer {access}"},
    )


async def signed_in(server: Server, user: str) -> tuple[dict, ChatClient]:
    """Register ``user``, log in and connect: the login's JSON and the connection."""
    assert (await register(server.port, user)).status == 201
    reply = await login(server.port, user)
    assert reply.status == 200, reply.body
    return reply.json, await connect_chat(server, reply.json["access_token"], user)


async def said(client: ChatClient, room: str, text: str, ref: str) -> int:
    await client.say(room, text, ref=ref)
    message_id: int = (await client.wait_ack(ref))["id"]
    return message_id


async def store_of(server: Server):
    return await open_store(server.config.db_url or sqlite_url(server.config.data_dir))


def database_bytes(server: Server) -> list[bytes]:
    """What a copy of the database holds now: the SQLite files, or a ``pg_dump``."""
    if server.config.db_url:
        return [dump_database(server.config.db_url)]
    return [
        path.read_bytes() for path in sorted(Path(server.config.data_dir).iterdir())
    ]


async def test_erasing_with_the_password_redacts_everything_and_quarantines_the_name(
    start_server: StartServer, db_url: str | None
) -> None:
    server = await start_server(db_url=db_url)
    ada_login, ada = await signed_in(server, "Ada")
    _, bob = await signed_in(server, "bob")
    _, cy = await signed_in(server, "cyd")
    secret = f"secret-{secrets.token_hex(8)}"
    kept = f"kept-{secrets.token_hex(8)}"
    clients = (ada, bob, cy)
    try:
        for client in clients:
            await client.join("lobby")
        for client in (ada, bob):
            await client.join("side")
        theirs = {
            "lobby": [
                await said(ada, "lobby", f"{secret}-1{PADDING}", "a1"),
                await said(ada, "lobby", f"{secret}-2{PADDING}", "a2"),
            ],
            "side": [await said(ada, "side", f"{secret}-3{PADDING}", "a3")],
        }
        bobs = await said(bob, "lobby", kept, "b1")
        start = {c.user: len(c.frames) for c in clients}

        reply = await erase(server.port, ada_login["access_token"])
        assert reply.status == 200, reply.body
        assert reply.json == {"erased": True, "messages": 3}

        assert await closed_with(ada) == (1008, "account disabled")
        for client, rooms in ((bob, ("lobby", "side")), (cy, ("lobby",))):
            for room in rooms:
                frames = await client.wait_count(
                    "deleted", len(theirs[room]), start=start[client.user], room=room
                )
                assert [f["message"] for f in frames] == theirs[room]
                ids = [f["id"] for f in frames]
                assert ids == sorted(ids) and ids[0] > max(theirs[room])
        start_bob = len(bob.frames)
        await bob.send(type="history", room="lobby")
        history = await bob.wait_frame("history", start=start_bob, room="lobby")
        shown = {
            m["id"]: (m["text"], m.get("deleted"))
            for m in history["messages"]
            if m["type"] == "message"
        }
        assert [shown[i] for i in theirs["lobby"]] == [("", True), ("", True)]
        assert shown[bobs] == (kept, None)

        wrong = await login(server.port, "Ada")
        assert wrong.status == 401
        refresh = await http(
            server.port,
            "POST",
            "/auth/refresh",
            {"refresh_token": ada_login["refresh_token"]},
        )
        assert refresh.status == 401
        assert (await register(server.port, "ada")).status == 409  # quarantined

        found = database_bytes(server)
        assert any(kept.encode() in data for data in found)  # the grep can see text
        assert [n for n, data in enumerate(found) if secret.encode() in data] == []

        store = await store_of(server)
        try:
            assert await store.forget_erased(0.0) == 0  # not before the quarantine
            assert await store.forget_erased(1e12) == 1  # when it is over
        finally:
            await store.close()
        assert (await register(server.port, "Ada")).status == 201
    finally:
        for client in clients:
            await client.close()


async def test_a_wrong_password_erases_nothing(
    start_server: StartServer, db_url: str | None
) -> None:
    server = await start_server(db_url=db_url)
    ada_login, ada = await signed_in(server, "Ada")
    try:
        await ada.join("lobby")
        first = await said(ada, "lobby", "still here", "a1")
        reply = await erase(server.port, ada_login["access_token"], "not-her-password")
        assert reply.status == 401
        bare = await http(server.port, "POST", "/auth/erase", {"password": PASSWORD})
        assert bare.status == 401  # no access token: the password alone erases nothing
        assert await said(ada, "lobby", "and still talking", "a2") == first + 1
        assert (await login(server.port, "Ada")).status == 200
        store = await store_of(server)
        try:
            [message] = await store.messages_before("lobby", first + 1, 1)
            assert (message.text, message.deleted_at) == ("still here", None)
            assert await store.membership("lobby", "ada") is not None
        finally:
            await store.close()
    finally:
        await ada.close()


async def test_an_admin_erases_on_the_servers_machine(
    start_server: StartServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    server = await start_server(data_dir=str(data_dir))
    ada_login, ada = await signed_in(server, "Ada")
    secret = f"secret-{secrets.token_hex(8)}"
    try:
        await ada.join("lobby")
        first = await said(ada, "lobby", secret + PADDING, "a1")
        assert await admin("erase", "ada", "--data-dir", str(data_dir)) == 0
        assert "1 message(s) deleted" in capsys.readouterr().out
        assert await closed_with(ada) == (1008, "account disabled")
        assert (await login(server.port, "Ada")).status == 401
        assert (await register(server.port, "ADA")).status == 409
        store = await store_of(server)
        try:
            assert await store.membership("lobby", "ada") is None
            entries = await store.messages_after("lobby", first - 1, 10)
            said_, deleted = entries[0], entries[-1]
            assert (said_.id, said_.text, said_.deleted_by) == (first, "", "admin")
            assert (deleted.kind, deleted.about, deleted.user) == (
                "deleted",
                first,
                "admin",
            )
        finally:
            await store.close()
        found = database_bytes(server)
        assert [n for n, data in enumerate(found) if secret.encode() in data] == []
        assert await admin("erase", "nobody", "--data-dir", str(data_dir)) == 1
    finally:
        await ada.close()


async def test_the_retention_sweep_ends_the_quarantine(tmp_path: Path) -> None:
    """The sweep every node runs forgets an erased user once ``QUARANTINE_S`` has passed, not before."""
    from rawws.chat.retention import RetentionSweep

    store = await open_store(sqlite_url(tmp_path))
    try:
        await store.create_user("ada", "x")
        stamp, events = await store.erase_user("ada", "ada", 1000.0)
        assert stamp is not None and stamp.disabled and events == []
        early = RetentionSweep(store, 0, 0, clock=lambda: 1000.0 + QUARANTINE_S - 1)
        await early.sweep_once()
        assert early.forgotten == 0 and await store.get_user("ada") is not None
        late = RetentionSweep(store, 0, 0, clock=lambda: 1000.0 + QUARANTINE_S + 1)
        await late.sweep_once()
        assert late.forgotten == 1 and await store.get_user("ada") is None
    finally:
        await store.close()
    await asyncio.sleep(0)
