"""``/sse``, ``/poll`` and ``POST /send`` on a real server over real sockets: what each answers,
to whom, and what a resumed position gets (docs/transports.md)."""

from __future__ import annotations

import asyncio

import pytest

from rawws.transports import sessions as sessions_module
from tests.conftest import StartServer
from tests.support.helpers import http, registered_token
from tests.support.transport_clients import SseSteps


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def send(port: int, token: str, session: str, *commands: dict) -> int:
    reply = await http(
        port,
        "POST",
        "/send",
        {"session": session, "commands": list(commands)},
        headers=bearer(token),
    )
    return reply.status


async def poll(
    port: int, token: str, query: str, headers: dict[str, str] | None = None
) -> dict:
    reply = await http(
        port, "GET", f"/poll{query}", headers={**bearer(token), **(headers or {})}
    )
    assert reply.status == 200, reply.body
    return reply.json


async def sse_session(
    port: int, token: str, position: str | None = None
) -> tuple[SseSteps, str]:
    stream = await SseSteps.open(port, token, last_event_id=position)
    assert stream.status == 200, stream.body
    first, _ = await stream.next()
    assert first["type"] == "session"
    return stream, first["session"]


async def test_an_event_stream_is_unbuffered_chunked_and_starts_with_its_session(
    start_server: StartServer,
) -> None:
    server = await start_server()
    token = await registered_token(server.port, "ann")
    stream = await SseSteps.open(server.port, token)
    assert stream.status == 200
    assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert stream.headers["cache-control"] == "no-cache, no-transform"
    assert stream.headers["x-accel-buffering"] == "no"
    assert stream.headers["transfer-encoding"] == "chunked"
    first, _ = await stream.next()
    assert stream.retry_ms == 2000
    assert first["type"] == "session" and first["transport"] == "sse"
    assert (await stream.next())[0]["type"] == "welcome"
    await stream.close()


async def test_a_say_sent_by_post_is_acked_on_the_stream_and_reaches_a_poller(
    start_server: StartServer,
) -> None:
    server = await start_server()
    port = server.port
    ann, bob = await registered_token(port, "ann"), await registered_token(port, "bob")
    stream, ann_session = await sse_session(port, ann)
    first = await poll(port, bob, "")
    bob_session = first["session"]
    assert await send(port, ann, ann_session, {"type": "join", "room": "lobby"}) == 202
    assert await send(port, bob, bob_session, {"type": "join", "room": "lobby"}) == 202
    joined, joined_id = await stream.until("joined", room="lobby")
    assert joined_id == f"lobby:{joined['last_id']}"
    assert (
        await send(
            port,
            ann,
            ann_session,
            {"type": "say", "room": "lobby", "text": "hi", "ref": "r1"},
        )
        == 202
    )
    ack, _ = await stream.until("ack", ref="r1")
    message, message_id = await stream.until("message", id=ack["id"])
    assert message["text"] == "hi" and message_id == f"lobby:{ack['id']}"
    cursor, seen = first["cursor"], []
    while not any(e["type"] == "message" for e in seen):
        answer = await poll(port, bob, f"?session={bob_session}&ack={cursor}&wait=10")
        cursor, seen = answer["cursor"], seen + answer["events"]
    said = [e for e in seen if e["type"] == "message"]
    assert [(e["id"], e["text"]) for e in said] == [(ack["id"], "hi")]
    assert answer["position"] == f"lobby:{ack['id']}"
    await stream.close()


async def test_another_users_session_and_a_missing_one_get_the_same_404(
    start_server: StartServer,
) -> None:
    server = await start_server()
    port = server.port
    ann, bob = await registered_token(port, "ann"), await registered_token(port, "bob")
    stream, ann_session = await sse_session(port, ann)
    say = {"type": "say", "room": "lobby", "text": "as ann", "ref": "x"}
    replies = [
        await http(
            port,
            "POST",
            "/send",
            {"session": s, "commands": [say]},
            headers=bearer(bob),
        )
        for s in (ann_session, "no-such-session")
    ]
    polls = [
        await http(port, "GET", f"/poll?session={s}&ack=0&wait=0", headers=bearer(bob))
        for s in (ann_session, "no-such-session")
    ]
    for reply in replies + polls:
        assert reply.status == 404
        assert reply.json["error"]["code"] == "no_such_session"
    assert replies[0].body == replies[1].body and polls[0].body == polls[1].body
    await stream.close()


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, {"session": "s", "commands": [{"type": "who", "room": "lobby"}]}, 401),
        (
            {"Authorization": "Bearer not-a-token"},
            {"session": "s", "commands": [{}]},
            401,
        ),
        ("bearer", b"session=s", 415),
        ("bearer", {"session": "s"}, 400),
        ("bearer", {"session": "s", "commands": []}, 400),
        ("bearer", {"session": "s", "commands": [{}] * 33}, 400),
        ("bearer", {"session": "s", "commands": ["say"]}, 400),
        ("bearer", {"session": 1, "commands": [{}]}, 400),
        ("bearer", {"session": "s", "commands": [{"text": "x" * 70_000}]}, 413),
        ("bearer", {"session": "s", "commands": [{}], "more": 1}, 400),
        ({"Origin": "https://evil.example"}, {"session": "s", "commands": [{}]}, 403),
    ],
)
async def test_post_send_refuses_what_is_not_a_users_commands_for_a_session(
    start_server: StartServer, headers: object, body: object, status: int
) -> None:
    server = await start_server()
    token = await registered_token(server.port, "ann")
    sent = dict(bearer(token)) if headers == "bearer" else dict(headers)  # type: ignore[call-overload]
    if headers == {"Origin": "https://evil.example"}:
        sent.update(bearer(token))
    if isinstance(body, bytes):
        sent["Content-Type"] = "application/x-www-form-urlencoded"
        reply = await http(server.port, "POST", "/send", body=body, headers=sent)
    else:
        reply = await http(server.port, "POST", "/send", body, headers=sent)
    assert reply.status == status, reply.body


@pytest.mark.parametrize("path", ["/sse", "/poll", "/poll?session=s&ack=0"])
async def test_a_token_in_a_url_is_refused(
    start_server: StartServer, path: str
) -> None:
    server = await start_server()
    token = await registered_token(server.port, "ann")
    joiner = "&" if "?" in path else "?"
    reply = await http(server.port, "GET", f"{path}{joiner}token={token}")
    assert reply.status == 401
    assert token not in reply.body.decode()


async def test_a_ticket_opens_one_stream_once(start_server: StartServer) -> None:
    server = await start_server()
    token = await registered_token(server.port, "ann")
    ticket = (
        await http(server.port, "POST", "/auth/ticket", headers=bearer(token))
    ).json["ticket"]
    first = await SseSteps.open(server.port, None, path=f"/sse?ticket={ticket}")
    assert first.status == 200
    again = await SseSteps.open(server.port, None, path=f"/sse?ticket={ticket}")
    assert again.status == 401
    await first.close()


async def test_a_resumed_position_gets_exactly_what_was_missed_in_every_room(
    start_server: StartServer,
) -> None:
    server = await start_server()
    port = server.port
    ann, bob = await registered_token(port, "ann"), await registered_token(port, "bob")
    stream, session = await sse_session(port, ann)
    await send(
        port,
        ann,
        session,
        {"type": "join", "room": "lobby"},
        {"type": "join", "room": "dev"},
    )
    # The two rooms are joined side by side: their ``joined`` may come in either order.
    waiting = {"lobby", "dev"}
    while waiting:
        event, position = await stream.next()
        if event["type"] == "joined":
            waiting.discard(event["room"])
    assert (
        position is not None and position.startswith("lobby:") and ",dev:" in position
    )
    await stream.close()
    bob_stream, bob_session = await sse_session(port, bob)
    said: dict[str, list[int]] = {"lobby": [], "dev": []}
    for n in range(6):
        room = "lobby" if n % 2 else "dev"
        if n < 2:
            await send(port, bob, bob_session, {"type": "join", "room": room})
            await bob_stream.until("joined", room=room)
        await send(
            port,
            bob,
            bob_session,
            {"type": "say", "room": room, "text": f"m{n}", "ref": f"m{n}"},
        )
        said[room].append((await bob_stream.until("ack", ref=f"m{n}"))[0]["id"])
    resumed, _ = await sse_session(port, ann, position)
    got: dict[str, list[int]] = {"lobby": [], "dev": []}
    while len(got["lobby"]) + len(got["dev"]) < 6:
        event, _ = await resumed.next()
        assert event["type"] != "error", event
        if event["type"] == "message":
            got[event["room"]].append(event["id"])
    assert got == said
    await send(
        port,
        bob,
        bob_session,
        {"type": "say", "room": "dev", "text": "live", "ref": "l"},
    )
    live, live_position = await resumed.until("message", text="live")
    assert live_position is not None and f"dev:{live['id']}" in live_position
    await asyncio.gather(resumed.close(), bob_stream.close())


async def test_a_garbage_position_is_said_then_a_fresh_start(
    start_server: StartServer,
) -> None:
    server = await start_server()
    token = await registered_token(server.port, "ann")
    stream, _ = await sse_session(server.port, token, "lobby:12,<script>")
    error, _ = await stream.next()
    assert error["type"] == "error" and error["code"] == "bad_position"
    welcome, position = await stream.next()
    assert welcome["type"] == "welcome" and position == ""
    await stream.close()


async def test_a_position_from_the_future_is_said_then_the_room_starts_at_its_newest(
    start_server: StartServer,
) -> None:
    server = await start_server()
    token = await registered_token(server.port, "ann")
    stream, _ = await sse_session(server.port, token, "lobby:999")
    ahead, _ = await stream.until("error")
    assert ahead["code"] == "position_ahead"
    joined, position = await stream.next()
    assert joined["type"] == "joined" and joined["last_id"] < 999
    assert position == f"lobby:{joined['last_id']}"
    await stream.close()


async def test_streams_and_polls_count_against_the_users_connection_limit(
    start_server: StartServer,
) -> None:
    server = await start_server(websockets_per_user=2)
    token = await registered_token(server.port, "ann")
    stream, _ = await sse_session(server.port, token)
    await poll(server.port, token, "")
    refused = await SseSteps.open(server.port, token)
    assert refused.status == 429
    await stream.close()
    for _ in range(100):  # the server sees the close, then the slot is free
        reopened = await SseSteps.open(server.port, token)
        if reopened.status == 200:
            break
        await asyncio.sleep(0.05)
    assert reopened.status == 200
    await reopened.close()


async def test_a_reader_that_stalls_is_closed_slow_consumer_at_what_it_really_got(
    start_server: StartServer,
) -> None:
    server = await start_server(
        outbox_max_messages=64,
        send_buffer_bytes=4096,
        write_high_water_bytes=4096,
        chat_messages_per_s=10_000,
        chat_message_burst=10_000,
    )
    port = server.port
    ann, bob = await registered_token(port, "ann"), await registered_token(port, "bob")
    stalled = await SseSteps.open(port, ann, receive_buffer=4096)
    stalled_session = (await stalled.next())[0]["session"]
    await send(port, ann, stalled_session, {"type": "join", "room": "lobby"})
    await stalled.until("joined", room="lobby")
    talker, talker_session = await sse_session(port, bob)
    await send(port, bob, talker_session, {"type": "join", "room": "lobby"})
    await talker.until("joined", room="lobby")

    async def keep_reading() -> None:
        """The talker keeps up: only the stalled reader lags."""
        while True:
            await talker.next(60)

    reading = asyncio.create_task(keep_reading())
    text = "x" * 3000
    for _ in range(100):
        status = await send(
            port,
            bob,
            talker_session,
            *[{"type": "say", "room": "lobby", "text": text} for _ in range(10)],
        )
        assert status == 202
        if server.counters.slow_consumers_closed:
            break
        await asyncio.sleep(0.05)
    assert server.counters.slow_consumers_closed == 1
    reading.cancel()
    events = await stalled.rest()
    closed, position = events[-1]
    assert closed == {"type": "closed", "code": 1008, "reason": "slow consumer"}
    ids = [frame["id"] for frame, _ in events if frame["type"] == "message"]
    assert ids and ids == list(range(ids[0], ids[0] + len(ids)))  # no hole
    assert position == f"lobby:{ids[-1]}"  # what it really got, no further
    await talker.close()


async def test_a_long_poll_session_idle_too_long_ends_and_is_404(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sessions_module, "POLL_IDLE_S", 0.2)
    monkeypatch.setattr(sessions_module, "SWEEP_S", 0.05)
    server = await start_server()
    token = await registered_token(server.port, "ann")
    session = (await poll(server.port, token, ""))["session"]
    await asyncio.sleep(1)  # five idle spans, twenty sweeps: no poll meanwhile
    reply = await http(
        server.port,
        "GET",
        f"/poll?session={session}&ack=0&wait=0",
        headers=bearer(token),
    )
    assert reply.status == 404


async def test_a_server_that_stops_ends_each_stream_with_closed_1001(
    start_server: StartServer,
) -> None:
    server = await start_server()
    token = await registered_token(server.port, "ann")
    stream, _ = await sse_session(server.port, token)
    await stream.next()  # welcome
    stopping = asyncio.create_task(server.shutdown())
    events = await stream.rest()
    assert events[-1][0] == {
        "type": "closed",
        "code": 1001,
        "reason": "server shutting down",
    }
    await asyncio.wait_for(stopping, 15)
