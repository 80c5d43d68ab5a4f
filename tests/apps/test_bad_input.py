"""What a client sends wrong, each answered with the API's JSON error and nothing stored
(never a 500), on SQLite and PostgreSQL; keys and user tokens kept apart both ways; the
scope of every mounted call; no key ever in the server's log."""

from __future__ import annotations

import json
import logging

import pytest

from rawws.apps.keys import SCOPES
from rawws.apps.openapi import CALLS
from rawws.apps.routes import PREFIX
from rawws.chat.app import open_app_store
from rawws.server.server import Server
from tests.apps.api import call, error_code, make_key, revoke_key
from tests.conftest import StartServer
from tests.support.chat_client import chatting, new_user
from tests.support.helpers import raw_upgrade_status, ticket

DIRECT = "~" + "0" * 24


async def newest(server: Server, room: str) -> int:
    store = await open_app_store(server.config)
    try:
        return await store.last_message_id(room)
    finally:
        await store.close()


def mounted(server: Server) -> list[str]:
    """The calls on the server's router (it lists its routes to no one else)."""
    return sorted(
        path.removeprefix(PREFIX)
        for path, methods in server.router._routes.items()
        if path.startswith(PREFIX) and "POST" in methods
    )


async def test_every_bad_input_is_a_json_error_and_stores_nothing(
    start_server: StartServer, db_url: str | None
) -> None:
    server = await start_server(db_url=db_url)
    key, _ = await make_key(
        server, "ticker", "publish", rooms=("news", "secret-*", "ghost")
    )
    reader, _ = await make_key(server, "reader", "read")
    gone, _ = await make_key(server, "gone", "publish")
    await revoke_key(server, "gone")
    slow, _ = await make_key(server, "slow", "publish", per_s=0.001, burst=1)
    user_token = await new_user(server.port, "ann")
    async with chatting(server, "bob") as (bob,):
        await bob.join("news")
        await bob.join("secret-x")
        await bob.join("outside")
    store = await open_app_store(server.config)
    try:
        await store.create_room(DIRECT, "direct", "bob")
    finally:
        await store.close()
    rooms = ("news", "secret-x", "outside", DIRECT)
    before = {room: await newest(server, room) for room in rooms}
    good = {"room": "news", "text": "hi"}
    assert (await call(server, "publish", good, slow)).status == 200
    before["news"] += 1
    big = {"room": "news", "text": "x" * (server.config.max_body_bytes + 1)}
    cases: list[tuple[str, dict, int, str | None]] = [
        ("malformed JSON", {"body": b'{"room": "news",'}, 400, "bad_json"),
        ("not an object", {"body": b"[1, 2]"}, 400, "bad_json"),
        ("wrong content type", {"body": b"{}", "headers": {"Content-Type": "text/plain"}},
         415, "bad_content_type"),
        ("unknown field", {"payload": {**good, "colour": "red"}}, 400, "bad_field"),
        ("missing text", {"payload": {"room": "news"}}, 400, "bad_field"),
        ("text a number", {"payload": {"room": "news", "text": 5}}, 400, "bad_field"),
        ("room not a name", {"payload": {"room": "News!", "text": "x"}}, 400, "bad_field"),
        ("room a list", {"payload": {"room": ["news"], "text": "x"}}, 400, "bad_field"),
        ("empty text", {"payload": {"room": "news", "text": "  "}}, 400, "bad_field"),
        ("NUL", {"payload": {"room": "news", "text": "a\x00b"}}, 400, "bad_field"),
        ("lone surrogate", {"body": b'{"room": "news", "text": "\\ud800"}'}, 400, "bad_field"),
        ("idempotency key too long", {"payload": {**good, "idempotency_key": "k" * 129}},
         400, "bad_field"),
        ("idempotency key not ASCII", {"payload": {**good, "idempotency_key": "é"}},
         400, "bad_field"),
        ("text too long", {"payload": {"room": "news", "text": "x" * 4001}}, 413, "too_long"),
        ("body too big", {"body": json.dumps(big).encode()}, 413, None),
        ("no key", {"payload": good, "key": None}, 401, "bad_key"),
        ("unknown key", {"payload": good, "key": key[:-5] + "AAAAA"}, 401, "bad_key"),
        ("unknown id", {"payload": good, "key": "rwk_000000000000_" + key[-43:]}, 401, "bad_key"),
        ("malformed key", {"payload": good, "key": key[:-1]}, 401, "bad_key"),
        ("revoked key", {"payload": good, "key": gone}, 401, "bad_key"),
        ("a user's JWT", {"payload": good, "key": user_token}, 401, "bad_key"),
        ("basic auth", {"payload": good, "headers": {"Authorization": f"Basic {key}"}},
         401, "bad_key"),
        ("scope missing", {"payload": good, "key": reader}, 403, "scope"),
        ("rate limited", {"payload": good, "key": slow}, 429, "rate_limited"),
        ("missing room", {"payload": {"room": "ghost", "text": "x"}}, 404, "no_such_room"),
        ("room outside the key", {"payload": {"room": "outside", "text": "x"}}, 404,
         "no_such_room"),
        ("direct room", {"payload": {"room": DIRECT, "text": "x"}}, 404, "no_such_room"),
    ]  # fmt: skip
    bodies_404: set[str] = set()
    for what, how, status, code in cases:
        reply = await call(
            server,
            "publish",
            how.get("payload"),
            how.get("key", key),
            body=how.get("body"),
            headers=how.get("headers"),
        )
        assert reply.status == status, (what, reply)
        assert reply.json["error"]["status"] == status, what
        if code is not None:
            assert error_code(reply) == code, what
        if status == 401:
            assert reply.headers["www-authenticate"].startswith("Bearer")
        if status == 429:
            assert int(reply.headers["retry-after"]) >= 1
        if status == 404:
            bodies_404.add(
                reply.json["error"]["message"].replace(how["payload"]["room"], "R")
            )
    assert (
        len(bodies_404) == 1
    )  # a missing room and one outside the key: the same answer
    assert {room: await newest(server, room) for room in rooms} == before


async def test_a_key_is_no_users_token_and_a_users_token_no_key(
    start_server: StartServer,
) -> None:
    server = await start_server()
    key, _ = await make_key(server, "ticker", *SCOPES)
    status, _ = await raw_upgrade_status(
        server.port, "/ws", extra=f"Authorization: Bearer {key}\r\n"
    )
    assert status == 401
    status, _ = await raw_upgrade_status(server.port, f"/ws?access_token={key}")
    assert status == 401
    assert (await ticket(server.port, key)).status == 401
    user_token = await new_user(server.port, "ticker")  # a user named like the key
    reply = await call(server, "publish", {"room": "news", "text": "x"}, user_token)
    assert reply.status == 401 and error_code(reply) == "bad_key"


async def test_every_mounted_call_asks_for_its_scope(start_server: StartServer) -> None:
    """For each call the server mounts: a key without its scope gets 403 ``scope``; one
    with only that scope gets past the check (an empty body is then the call's own answer)."""
    server = await start_server()
    keys = {
        scope: (await make_key(server, f"only-{scope}", scope))[0] for scope in SCOPES
    }
    names = mounted(server)
    assert {"publish", "publish_batch"} <= set(names)
    for name in names:
        needed = CALLS[name][0]
        for scope, key in keys.items():
            reply = await call(server, name, {}, key)
            assert reply.status != 500, (name, scope, reply)
            if scope == needed:
                assert reply.status not in (401, 403), (name, scope, reply)
            else:
                assert reply.status == 403 and error_code(reply) == "scope", (
                    name,
                    scope,
                )


async def test_no_key_is_ever_in_the_log(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = await start_server()
    key, _ = await make_key(server, "ticker", "publish")
    async with chatting(server, "ann") as (ann,):
        await ann.join("news")
        for text in ("a", "b"):
            await call(server, "publish", {"room": "news", "text": text}, key)
        await call(server, "publish", {"room": "news", "text": "c"}, key[:-3] + "xyz")
        await call(server, "publish", {"room": "news", "bad": 1}, key)
        await raw_upgrade_status(server.port, f"/ws?access_token={key}")
        await raw_upgrade_status(
            server.port, "/ws", extra=f"Authorization: Bearer {key}\r\n"
        )
    logged = "\n".join(
        f"{record.getMessage()} {record.exc_text or ''}" for record in caplog.records
    )
    assert logged  # the server did log (access lines, at least)
    secret = key[-43:]
    assert secret not in logged and secret[:20] not in logged
