"""The hooks end to end: a real `rawws` server (``start_server``) calling a real little app on loopback
(``tests.support.hook_app``) that verifies every signature; the app allows, denies, is slow, answers
500 or is not there, and each hook (connect, join, say, disconnect) is held to what
docs/server-api.md says."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from rawws.chat.hooked import DisconnectHook
from rawws.server.metrics import RawwsCollector
from rawws.server.server import Server
from rawws.store import SqlStore
from tests.conftest import StartServer
from tests.support.chat_client import (
    chat_handler,
    close_quietly,
    connect_chat,
    new_users,
)
from tests.support.helpers import raw_upgrade_status, wait_for_condition
from tests.support.hook_app import (
    SECRET,
    Call,
    HookApp,
    allow_all,
    nothing_listening,
    verdict,
)

FAST = {"chat_messages_per_s": 1000.0, "chat_message_burst": 1000}


@pytest.fixture
async def app() -> AsyncIterator[HookApp]:
    hook_app = await HookApp().start()
    yield hook_app
    await hook_app.close()
    assert hook_app.bad_signatures == 0  # every request the server sent verified


@pytest.fixture
def key_file(tmp_path: Path) -> str:
    path = tmp_path / "hook-key"
    path.write_bytes(SECRET + b"\n")
    return str(path)


@pytest.fixture(autouse=True)
def no_secret_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG, logger="rawws")
    yield
    for record in caplog.records:
        assert SECRET.decode() not in record.getMessage(), record.getMessage()


def store_of(server: Server) -> SqlStore:
    handler = server.endpoints["/ws"].handler
    assert isinstance(handler, DisconnectHook)
    store = handler.deliveries.store
    assert isinstance(store, SqlStore)
    return store


async def upgrade_status(server: Server, token: str) -> int:
    status, _ = await raw_upgrade_status(
        server.port, "/ws", f"Authorization: Bearer {token}\r\n"
    )
    return status


# -- connect ---------------------------------------------------------------------------


async def test_connect_is_allowed_or_denied_before_the_101(
    start_server: StartServer, app: HookApp, key_file: str
) -> None:
    app.decide = lambda call: verdict(call.body["user"] != "mal", "not today")
    server = await start_server(hook_url=app.url, hook_secret_file=key_file)
    tokens = await new_users(server, "ada", "mal")
    assert await upgrade_status(server, tokens["ada"]) == 101
    assert await upgrade_status(server, tokens["mal"]) == 403
    connects = app.of_kind("connect")
    assert [c.body for c in connects] == [
        {"user": "ada", "address": "127.0.0.1"},
        {"user": "mal", "address": "127.0.0.1"},
    ]
    assert server.counters.handshakes.get(403) == 1
    assert server.counters.hook_calls[("connect", "allow")] == 1
    assert server.counters.hook_calls[("connect", "deny")] == 1
    families = {f.name: f for f in RawwsCollector(server).collect()}
    labels = {
        tuple(sorted(s.labels.items()))
        for s in families["rawws_hook_calls"].samples
        if s.name == "rawws_hook_calls_total"
    }
    assert (("hook", "connect"), ("outcome", "deny")) in labels


@pytest.mark.parametrize(("policy", "status"), [("deny", 503), ("allow", 101)])
async def test_no_app_listening_follows_the_failure_policy(
    start_server: StartServer, key_file: str, policy: str, status: int
) -> None:
    server = await start_server(
        hook_url=nothing_listening(), hook_secret_file=key_file, hook_failure=policy
    )
    tokens = await new_users(server, "ada")
    assert await upgrade_status(server, tokens["ada"]) == status
    assert server.counters.hook_calls == {("connect", "failed"): 1}


@pytest.mark.parametrize(("policy", "status"), [("deny", 503), ("allow", 101)])
async def test_a_slow_app_is_a_failure_after_the_timeout(
    start_server: StartServer, app: HookApp, key_file: str, policy: str, status: int
) -> None:
    async def slow(call: Call) -> tuple[int, bytes]:
        await asyncio.sleep(3)
        return verdict(True)

    app.decide = slow
    server = await start_server(
        hook_url=app.url,
        hook_secret_file=key_file,
        hook_timeout_s=0.3,
        hook_failure=policy,
    )
    tokens = await new_users(server, "ada")
    assert await upgrade_status(server, tokens["ada"]) == status
    assert server.counters.hook_calls[("connect", "failed")] == 1


# -- join --------------------------------------------------------------------------------


async def test_a_private_join_asks_the_app_and_a_no_reads_as_no_such_room(
    start_server: StartServer, app: HookApp, key_file: str
) -> None:
    def decide(call: Call) -> tuple[int, bytes]:
        if call.kind == "join":
            return verdict(call.body["user"] == "ann", "members only")
        return verdict(True)

    app.decide = decide
    server = await start_server(hook_url=app.url, hook_secret_file=key_file)
    tokens = await new_users(server, "ann", "bob")
    ann = await connect_chat(server, tokens["ann"], "ann")
    bob = await connect_chat(server, tokens["bob"], "bob")
    try:
        await ann.send(type="create", room="den", kind="private", ref="c")
        room = (await ann.wait_frame("created", ref="c"))["room"]
        await ann.send(type="invite", room=room, user="bob", ref="i")
        await ann.wait_frame("invited", ref="i")
        await bob.send(type="join", room=room, ref="j")
        refused = await bob.wait_frame("error", ref="j")
        assert refused["code"] == "no_such_room"
        assert refused["message"] == f"no room {room}"  # a non-member's very words
        await ann.join(room)  # the app allows ann
        await ann.join("lobby")  # a public room: the app is not asked
    finally:
        await close_quietly(ann, bob)
    assert [(c.body["user"], c.body["room"]) for c in app.of_kind("join")] == [
        ("bob", room),
        ("ann", room),
    ]


# -- say -----------------------------------------------------------------------------------


async def test_say_in_a_hooked_room_waits_for_the_app_in_order(
    start_server: StartServer, app: HookApp, key_file: str
) -> None:
    release = asyncio.Event()

    async def decide(call: Call) -> tuple[int, bytes]:
        if call.kind != "say":
            return verdict(True)
        if call.body["text"] == "slow":
            await release.wait()
        if "spam" in call.body["text"]:
            return verdict(False, "no spam here")
        return verdict(True)

    app.decide = decide
    server = await start_server(
        hook_url=app.url,
        hook_secret_file=key_file,
        hook_say_rooms=("ask-*", "exact"),
        **FAST,
    )
    tokens = await new_users(server, "ann", "bob")
    ann = await connect_chat(server, tokens["ann"], "ann")
    bob = await connect_chat(server, tokens["bob"], "bob")
    try:
        for room in ("ask-here", "free", "exact"):
            await ann.join(room)
        await bob.join("ask-here")
        await ann.say("free", "before", "f0")
        await ann.wait_ack("f0")  # nothing waits: stored at once, the app not asked
        await ann.say("ask-here", "slow", "s1")
        await ann.say("free", "after", "f1")  # must not overtake s1
        await ann.say("ask-here", "some spam", "s2")
        await ann.say("exact", "fine", "s3")
        await asyncio.sleep(0.2)
        assert "s1" not in ann.acks and "f1" not in ann.acks
        release.set()
        await ann.wait_ack("s3")
        refused = await ann.wait_frame("error", ref="s2")
        assert refused["code"] == "forbidden" and refused["message"] == "no spam here"
        # stored, and so acknowledged, in the order sent (a refusal, like any error, is said at once)
        acked = [f["ref"] for f in ann.frames if f["type"] == "ack"]
        assert acked == ["f0", "s1", "f1", "s3"]
        assert "s2" not in ann.acks
        # bob, in ask-here, got the allowed message and never the refused one
        await bob.wait_until(lambda: bob.messages("ask-here"), what="slow")
        await ann.send(type="history", room="ask-here", ref="h")
        history = await ann.wait_frame("history", room="ask-here")
    finally:
        await close_quietly(ann, bob)
    assert [m["text"] for m in bob.messages("ask-here")] == ["slow"]
    stored = [m["text"] for m in history["messages"] if m["type"] == "message"]
    assert stored == ["slow"]
    asked = [(c.body["room"], c.body["text"]) for c in app.of_kind("say")]
    assert asked == [("ask-here", "slow"), ("ask-here", "some spam"), ("exact", "fine")]
    assert app.of_kind("say")[0].body["user"] == "ann"
    assert server.counters.hook_calls[("say", "deny")] == 1


async def test_says_waiting_per_connection_are_bounded(
    start_server: StartServer, app: HookApp, key_file: str
) -> None:
    from rawws.chat.hooked import MAX_WAITING_SAYS

    release = asyncio.Event()

    async def decide(call: Call) -> tuple[int, bytes]:
        if call.kind == "say":
            await release.wait()
        return verdict(True)

    app.decide = decide
    server = await start_server(
        hook_url=app.url, hook_secret_file=key_file, hook_say_rooms=("ask",), **FAST
    )
    tokens = await new_users(server, "ann")
    ann = await connect_chat(server, tokens["ann"], "ann")
    try:
        await ann.join("ask")
        for i in range(MAX_WAITING_SAYS + 1):
            await ann.say("ask", f"m{i}", f"r{i}")
        over = await ann.wait_frame("error", ref=f"r{MAX_WAITING_SAYS}")
        assert over["code"] == "rate_limited"
        release.set()
        await ann.wait_ack(f"r{MAX_WAITING_SAYS - 1}")
        acked = [f["ref"] for f in ann.frames if f["type"] == "ack"]
    finally:
        await close_quietly(ann)
    assert acked == [f"r{i}" for i in range(MAX_WAITING_SAYS)]


@pytest.mark.parametrize(("policy", "stored"), [("deny", False), ("allow", True)])
async def test_a_say_the_app_cannot_answer_follows_the_policy(
    start_server: StartServer, app: HookApp, key_file: str, policy: str, stored: bool
) -> None:
    app.decide = lambda call: (500, b"oops") if call.kind == "say" else verdict(True)
    server = await start_server(
        hook_url=app.url,
        hook_secret_file=key_file,
        hook_say_rooms=("ask",),
        hook_failure=policy,
    )
    tokens = await new_users(server, "ann")
    ann = await connect_chat(server, tokens["ann"], "ann")
    try:
        await ann.join("ask")
        await ann.say("ask", "hello", "r")
        if stored:
            await ann.wait_ack("r")
        else:
            refused = await ann.wait_frame("error", ref="r")
            assert refused["code"] == "unavailable"
    finally:
        await close_quietly(ann)
    assert server.counters.hook_calls[("say", "failed")] == 1


# -- disconnect ------------------------------------------------------------------------------


async def test_a_disconnect_is_retried_until_the_app_takes_it(
    start_server: StartServer, app: HookApp, key_file: str
) -> None:
    answered: list[int] = []

    def decide(call: Call) -> tuple[int, bytes]:
        if call.kind != "disconnect":
            return verdict(True)
        status = 500 if len(app.of_kind("disconnect")) == 1 else 204
        answered.append(status)
        return status, b""

    app.decide = decide
    server = await start_server(hook_url=app.url, hook_secret_file=key_file)
    store = store_of(server)
    tokens = await new_users(server, "ann")
    ann = await connect_chat(server, tokens["ann"], "ann")
    await ann.close()
    await wait_for_condition(lambda: 204 in answered, what="the retry taken")
    await wait_for_condition(lambda: True)  # the row's deletion follows the answer
    async with asyncio.timeout(10):
        while await store.hook_deliveries_waiting():
            await asyncio.sleep(0.05)
    calls = app.of_kind("disconnect")
    assert len(calls) >= 2 and answered.count(204) == 1
    assert len({c.delivery for c in calls}) == 1  # the same X-Rawws-Delivery every time
    assert len({c.raw for c in calls}) == 1  # the same bytes, signed again
    body = calls[0].body
    assert body["user"] == "ann" and body["code"] == 1000
    assert body["node"] and isinstance(body["at"], float)
    assert server.counters.hook_calls[("disconnect", "failed")] == 1
    assert server.counters.hook_calls[("disconnect", "delivered")] == 1


async def test_a_disconnect_waits_for_an_app_that_comes_back(
    start_server: StartServer, key_file: str
) -> None:
    url = nothing_listening()
    server = await start_server(
        hook_url=url, hook_secret_file=key_file, hook_failure="allow"
    )
    store = store_of(server)
    tokens = await new_users(server, "ann")
    ann = await connect_chat(server, tokens["ann"], "ann")  # connect: failed, allowed
    await ann.close()
    await wait_for_condition(
        lambda: server.counters.hook_calls.get(("disconnect", "failed")),
        what="a first try refused",
    )
    assert await store.hook_deliveries_waiting() == 1
    app = await HookApp(decide=allow_all).start(int(url.split(":")[2].split("/")[0]))
    try:
        async with asyncio.timeout(10):
            while await store.hook_deliveries_waiting():
                await asyncio.sleep(0.05)
    finally:
        await app.close()
    assert len(app.of_kind("disconnect")) == 1 and app.bad_signatures == 0


async def test_without_a_hook_url_nothing_runs_and_nothing_is_written(
    start_server: StartServer,
) -> None:
    server = await start_server()
    handler = chat_handler(server)  # the chat itself, not wrapped
    assert handler.hooks is None
    tokens = await new_users(server, "ann")
    ann = await connect_chat(server, tokens["ann"], "ann")
    await ann.close()
    assert await handler.store.hook_deliveries_waiting() == 0  # type: ignore[attr-defined]
    assert server.counters.hook_calls == {}
