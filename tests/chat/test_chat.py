"""The chat service end to end: a real server, real sockets, SQLite and PostgreSQL.

Every client here is a real `/ws` connection (the `websockets` library, or a raw
socket where a library would hide the bytes); every wait has a deadline and no
assertion is about how long something took.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

import pytest

from rawws.chat import wire as chat
from rawws.config import DEFAULT_CHAT_MESSAGE_BURST, DEFAULT_CHAT_REPLAY_PAGE_MESSAGES
from rawws.server.server import Server
from testkit import masked_frame
from tests.support.chat_client import (
    BAD_CASES,
    TIMEOUT_S,
    ChatClient,
    chat_handler,
    chatting,
    client_text_frame,
    close_quietly,
    connect_chat,
    flood_text,
    healthz,
    login,
    new_users,
    raw_chat_socket,
)
from tests.support.helpers import close_code

StartChat = Callable[..., Awaitable[Server]]


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture
def start_chat(
    start_server, db_url: str | None, request: pytest.FixtureRequest
) -> StartChat:
    """Start a full server on the parametrized database; logins are not rate-limited here,
    and chat frames are not either in a test that asks for ``no_rate_limit``."""

    async def start(**settings: object) -> Server:
        defaults: dict[str, object] = {
            "db_url": db_url,
            "logins_per_minute_per_address": 100_000,
            "logins_per_minute_per_user": 100_000,
        }
        if "no_rate_limit" in request.fixturenames:
            defaults.update(UNLIMITED_CHAT)
        return await start_server(**{**defaults, **settings})

    return start


#: For floods: the per-connection frame limit made huge.
UNLIMITED_CHAT: dict[str, object] = {
    "chat_message_burst": 10**9,
    "chat_messages_per_s": 10.0**9,
}


@pytest.fixture
def no_rate_limit() -> None:
    """Asked for by flood tests: ``start_chat`` then lifts the frame limit."""


async def history(client: ChatClient, room: str, **fields: object) -> list[dict]:
    start = len(client.frames)
    await client.send(type="history", room=room, **fields)
    answer = await client.wait_frame("history", start=start, room=room)
    return answer["messages"]


async def all_history(client: ChatClient, room: str) -> list[dict]:
    """Every stored message of ``room``, oldest first, paging back with ``before``."""
    pages: list[list[dict]] = []
    before: int | None = None
    while True:
        page = await history(
            client,
            room,
            limit=chat.MAX_HISTORY_LIMIT,
            **({"before": before} if before else {}),
        )
        if not page:
            break
        pages.append(page)
        before = page[0]["id"]
    return [m for page in reversed(pages) for m in page]


async def sync(client: ChatClient, room: str = "lobby") -> list[str]:
    """A round trip (``who``): every frame queued for ``client`` before it has arrived when this returns."""
    start = len(client.frames)
    await client.send(type="who", room=room)
    return (await client.wait_frame("members", start=start, room=room))["users"]


def assert_gapless(ids: list[int], first: int, last: int, who: str = "") -> None:
    assert ids == list(range(first, last + 1)), (
        f"{who}: expected ids {first}..{last} once each, in order; got {len(ids)} ids"
        f" (duplicates: {sorted({i for i in ids if ids.count(i) > 1})[:10]},"
        f" missing: {sorted(set(range(first, last + 1)) - set(ids))[:10]}, head {ids[:10]})"
    )


# -- messages: to every member once, in order; stamped; acked first --------------------


async def test_every_member_gets_every_message_of_its_room_once_in_order(
    start_chat: StartChat,
) -> None:
    server = await start_chat()
    names = ["ann", "ben", "cat", "dan", "eve", "fay"]
    rooms_of = {
        "ann": ["lobby"],
        "ben": ["lobby"],
        "cat": ["lobby", "dev"],
        "dan": ["dev"],
        "eve": ["dev"],
        "fay": ["lobby"],
    }
    async with chatting(server, *names) as connected:
        clients = dict(zip(names, connected, strict=True))
        # Everyone joins first. Each first join of a room stores a `joined` event, the room's next
        # id; the messages come after the last of them: base[room] + 1 onwards.
        joined: dict[tuple[str, str], dict] = {}
        for name, rooms in rooms_of.items():
            for room in rooms:
                joined[name, room] = await clients[name].join(room)
        base = {
            room: max(last["last_id"] for (_, r), last in joined.items() if r == room)
            for room in ("lobby", "dev")
        }
        per_sender = 8  # within the burst of the per-connection rate limit
        sent: dict[str, dict[str, str]] = {"lobby": {}, "dev": {}}  # room → ref → text

        async def talk(name: str) -> None:
            client = clients[name]
            for i in range(per_sender):
                room = rooms_of[name][i % len(rooms_of[name])]
                ref, text = f"{name}-{i}", f"{name} says {i} in {room}"
                sent[room][ref] = text
                # a client cannot speak as someone else: "user" in the frame is ignored
                await client.send(
                    type="say",
                    room=room,
                    text=text,
                    ref=ref,
                    user="ben" if name != "ben" else "ann",
                )

        await asyncio.gather(*(talk(name) for name in names))
        totals = {room: len(refs) for room, refs in sent.items()}
        for name, client in clients.items():
            for room in rooms_of[name]:
                await client.wait_message_id(room, base[room] + totals[room])

        # every ack came before its own message, and carries the ref and the id it got
        stored: dict[str, dict[int, dict]] = {"lobby": {}, "dev": {}}
        for name, client in clients.items():
            for i in range(per_sender):
                ref = f"{name}-{i}"
                ack = await client.wait_ack(ref)
                room = rooms_of[name][i % len(rooms_of[name])]
                assert ack == {"type": "ack", "ref": ref, "room": room, "id": ack["id"]}
                position = client.frames.index(ack)
                mine = [
                    f
                    for f in client.frames
                    if f["type"] == "message"
                    and f["room"] == room
                    and f["id"] == ack["id"]
                ]
                assert len(mine) == 1 and client.frames.index(mine[0]) > position, (
                    f"{ref}: message before its ack"
                )
                assert mine[0]["user"] == name, (
                    "the server stamps the user from the token"
                )
                assert mine[0]["text"] == sent[room][ref]

        for name, client in clients.items():
            for room in ("lobby", "dev"):
                messages = client.messages(room)
                if room not in rooms_of[name]:
                    assert messages == [], (
                        f"{name} got messages of {room}, a room it is not in"
                    )
                    continue
                assert_gapless(
                    [m["id"] for m in messages],
                    base[room] + 1,
                    base[room] + totals[room],
                    f"{name}/{room}",
                )
                # and before them, the `joined` events of those who joined after it: every id
                # of the room from its own join on, once each, in order
                since = joined[name, room]["last_id"]
                assert_gapless(
                    client.entry_ids(room),
                    since + 1,
                    base[room] + totals[room],
                    f"{name}/{room} with member events",
                )
                later = [
                    other
                    for (other, r), answer in joined.items()
                    if r == room and answer["last_id"] > since
                ]
                assert [
                    (e["event"], e["user"], e["by"])
                    for e in client.of_type("member", room=room)
                ] == [("joined", other, other) for other in later]
                for m in messages:
                    assert set(m) == {"type", "room", "id", "user", "text", "ts"}
                    assert m["text"].startswith(f"{m['user']} says ")
                    previous = stored[room].setdefault(m["id"], m)
                    assert previous == m, (
                        "two members got different messages under one id"
                    )
        # each (room, id) is one message: all members agree, and every sent text is there once
        for room in ("lobby", "dev"):
            assert sorted(m["text"] for m in stored[room].values()) == sorted(
                sent[room].values()
            )


async def test_a_compressed_member_gets_the_same_messages(
    start_chat: StartChat,
) -> None:
    """A permessage-deflate member gets its own frames; the content is the same as for the others."""
    server = await start_chat()
    tokens = await new_users(server, "ann", "ben")
    plain = await connect_chat(server, tokens["ann"], "ann")
    deflated = await connect_chat(server, tokens["ben"], "ben", compression="deflate")
    try:
        assert deflated.ws.response.headers.get(
            "Sec-WebSocket-Extensions", ""
        ).startswith("permessage-deflate")
        await plain.join("lobby")
        await deflated.join("lobby")
        for i in range(5):
            await plain.say("lobby", f"hello {i} " * 50, ref=f"r{i}")
        await plain.wait_message_id("lobby", 5)
        await deflated.wait_message_id("lobby", 5)
        assert plain.messages("lobby") == deflated.messages("lobby")
    finally:
        await close_quietly(plain, deflated)


async def test_say_needs_a_join_and_a_member_is_told_its_own_rooms(
    start_chat: StartChat,
) -> None:
    server = await start_chat(chat_max_rooms_per_connection=7, chat_messages_per_s=2.5)
    async with chatting(server, "ann") as (ann,):
        assert ann.frames[0] == {
            "type": "welcome",
            "user": "ann",
            "rooms": ["lobby"],
            "limits": chat.limits(7, 2.5, DEFAULT_CHAT_MESSAGE_BURST),  # as configured
        }
        await ann.say("lobby", "hi", ref="early")
        error = await ann.wait_frame("error", ref="early")
        assert error["code"] == chat.NOT_JOINED
        joined = await ann.join("lobby")
        assert joined == {
            "type": "joined",
            "room": "lobby",
            "kind": "public",
            "users": ["ann"],
            # a new room: its only entry is ann's own `joined` event (her first join stored
            # it), which she is not sent
            "last_id": 1,
            "last_read": 1,  # her marker starts where her membership does
            "unread": 0,
        }
        assert ann.of_type("member") == []
        start = len(ann.frames)
        await ann.send(type="join", room="lobby", ref="again")
        assert (await ann.wait_frame("error", start=start))[
            "code"
        ] == chat.BAD_ROOM  # already in it
        await ann.send(type="leave", room="dev")
        assert (await ann.wait_frame("error", start=start + 1))[
            "code"
        ] == chat.NOT_JOINED
        await ann.say("lobby", "now", ref="now")
        now = (await ann.wait_ack("now"))["id"]
        assert now == joined["last_id"] + 1  # the room's next id after her join
        start = len(ann.frames)
        await ann.send(type="leave", room="lobby")
        assert await ann.wait_frame("left", start=start) == {
            "type": "left",
            "room": "lobby",
        }
        await ann.say("lobby", "gone", ref="gone")
        assert (await ann.wait_frame("error", ref="gone"))["code"] == chat.NOT_JOINED
        start = len(ann.frames)
        # joined again after a plain leave: nothing stored, and since=0 replays what she
        # may read, from her first join on: her message
        assert (await ann.join("lobby", since=0))["last_id"] == now
        # (her live copy of it came before the leave: wait for the replayed one)
        await ann.wait_until(
            lambda: ann.entry_ids("lobby", start), what="the replayed message"
        )
        assert ann.entry_ids("lobby", start) == [now]


async def test_too_many_rooms(start_chat: StartChat) -> None:
    server = await start_chat(chat_max_rooms_per_connection=3)
    async with chatting(server, "ann") as (ann,):
        for room in ("r1", "r2", "r3"):
            await ann.join(room)
        start = len(ann.frames)
        await ann.send(type="join", room="r4")
        assert (await ann.wait_frame("error", start=start))[
            "code"
        ] == chat.TOO_MANY_ROOMS
        await ann.send(type="leave", room="r1")
        await ann.join("r4")  # leaving makes room for another


# -- presence ---------------------------------------------------------------------------


async def test_presence_with_two_tabs(start_chat: StartChat) -> None:
    server = await start_chat()
    async with chatting(server, "bob", "ann", "ann") as (bob, tab1, tab2):
        assert (await bob.join("lobby"))["users"] == ["bob"]
        assert (await tab1.join("lobby"))["users"] == ["ann", "bob"]
        await bob.wait_frame("presence", room="lobby", user="ann", event="joined")
        assert (await tab2.join("lobby"))["users"] == [
            "ann",
            "bob",
        ]  # the `joined` answer lists users
        assert await sync(bob) == ["ann", "bob"]  # `who` → `members`
        assert len(bob.of_type("presence", user="ann", event="joined")) == 1, (
            "the second tab joined again"
        )
        assert (
            tab1.of_type("presence", user="ann") == []
            and tab2.of_type("presence") == []
        )

        await tab1.close()
        assert await sync(bob) == ["ann", "bob"]
        assert bob.of_type("presence", event="left") == [], (
            "ann left while a tab is still open"
        )

        # an explicit leave of the last tab is a departure too; joining again is an arrival
        start = len(bob.frames)
        await tab2.send(type="leave", room="lobby")
        await tab2.wait_frame("left", room="lobby")
        await bob.wait_frame(
            "presence", start=start, room="lobby", user="ann", event="left"
        )
        await tab2.join("lobby")
        await bob.wait_frame(
            "presence", start=start, room="lobby", user="ann", event="joined"
        )

        start = len(bob.frames)
        await tab2.close()
        await bob.wait_frame(
            "presence", start=start, room="lobby", user="ann", event="left"
        )
        assert await sync(bob) == ["bob"]
        assert len(bob.of_type("presence", start=start)) == 1


async def test_presence_stays_in_its_room(start_chat: StartChat) -> None:
    server = await start_chat()
    async with chatting(server, "bob", "ann") as (bob, ann):
        await bob.join("lobby")
        await ann.join("dev")
        assert await sync(bob, "lobby") == ["bob"]
        assert await sync(ann, "dev") == ["ann"]
        assert bob.of_type("presence") == []


async def test_a_non_member_learns_nothing_of_a_room_neither_its_members_nor_its_history(
    start_chat: StartChat,
) -> None:
    """``who`` and ``history`` are authorized like ``say`` (rawws.chat.access): join the room first."""
    server = await start_chat()
    async with chatting(server, "bob", "ann") as (bob, ann):
        await ann.join("secret")
        await ann.say("secret", "the plan", ref="p")
        await ann.wait_ack("p")
        for asked in (
            {"type": "who", "room": "secret"},
            {"type": "history", "room": "secret"},
        ):
            start = len(bob.frames)
            await bob.send(**asked)
            refused = await bob.wait_frame("error", start=start)
            assert refused["code"] == "not_joined", refused
        assert bob.of_type("members") == [] and bob.of_type("history") == []
        assert not [
            frame
            for frame in bob.frames
            if "the plan" in str(frame) or "ann" in str(frame.get("users", ""))
        ]


# -- malformed frames over the wire --------------------------------------------------------


async def test_each_malformed_frame_gets_its_error_and_the_connection_goes_on(
    start_chat: StartChat, no_rate_limit: None
) -> None:
    server = await start_chat()
    async with chatting(server, "ann", "bob") as (ann, bob):
        await ann.join("lobby")
        await bob.join("lobby")
        for name, data, code, ref in BAD_CASES:
            start = len(ann.frames)
            await ann.send_raw(data)
            error = await ann.wait_frame("error", start=start)
            assert error["code"] == code, f"{name}: {error}"
            assert error.get("ref") == ref, f"{name}: {error}"
            await ann.say("lobby", f"after {name}", ref=f"ok-{name}"[:64])
            await ann.wait_ack(f"ok-{name}"[:64])
        assert not ann.done
        assert len(ann.of_type("error")) == len(BAD_CASES)
        # nothing malformed was stored or sent to others: bob got exactly the good messages
        await bob.wait_message_id("lobby", len(BAD_CASES))
        assert [m["text"] for m in bob.messages("lobby")] == [
            f"after {name}" for name, *_ in BAD_CASES
        ]


async def test_history_with_an_id_beyond_bigint_is_a_bad_field_not_a_store_failure(
    start_chat: StartChat,
) -> None:
    server = await start_chat()
    async with chatting(server, "ann") as (ann,):
        await ann.join("lobby")
        for fields in ({"before": 2**63}, {"before": 10**30}):
            start = len(ann.frames)
            await ann.send(type="history", room="lobby", **fields)
            assert (await ann.wait_frame("error", start=start))[
                "code"
            ] == chat.BAD_FIELD
        assert await history(ann, "lobby", before=2**63 - 1) == []


async def test_a_text_no_database_can_hold_does_not_fail_other_messages(
    start_chat: StartChat,
) -> None:
    """NUL (PostgreSQL) or a lone surrogate (any UTF-8): refused at once, never part of a stored batch."""
    server = await start_chat()
    async with chatting(server, "ann", "bob") as (ann, bob):
        ann_joined = await ann.join("lobby")
        base = (await bob.join("lobby"))["last_id"]
        await asyncio.gather(
            ann.send_raw(
                '{"type":"say","room":"lobby","text":"nul \\u0000 here","ref":"nul"}'
            ),
            ann.send_raw(
                '{"type":"say","room":"lobby","text":"half \\udc00 char","ref":"sur"}'
            ),
            bob.say("lobby", "fine", ref="fine"),
        )
        assert (await ann.wait_frame("error", ref="nul"))["code"] == chat.BAD_FIELD
        assert (await ann.wait_frame("error", ref="sur"))["code"] == chat.BAD_FIELD
        # the ids after both joins (each stored a `joined` event): the refused texts took none
        assert (await bob.wait_ack("fine"))["id"] == base + 1
        await ann.say("lobby", "still here", ref="after")
        assert (await ann.wait_ack("after"))["id"] == base + 2
        await ann.wait_message_id("lobby", base + 2)
        found = await history(ann, "lobby")  # from ann's join: bob's join, then the two
        assert [m["id"] for m in found] == list(
            range(ann_joined["last_id"] + 1, base + 3)
        )
        assert [m["text"] for m in found if m["type"] == "message"] == [
            "fine",
            "still here",
        ]
        assert [(m["event"], m["user"]) for m in found if m["type"] == "member"] == [
            ("joined", "bob")
        ]


# -- rate limit ------------------------------------------------------------------------------


async def test_frames_over_the_rate_are_dropped_unparsed_with_one_rate_limited(
    start_chat: StartChat,
) -> None:
    """1,000 bad frames are not answered 1,000 times: past the bucket they are dropped unread, and one
    ``rate_limited`` (without a ref, the frame was never read) tells the client per stretch of dropping."""
    server = await start_chat()
    flood = 1000
    async with chatting(server, "ann") as (ann,):
        await ann.join("lobby")
        start = len(ann.frames)
        for _ in range(flood):
            await ann.send_raw("{not json")
        await ann.say(
            "lobby", "behind the garbage", ref="after"
        )  # dropped too: no answer of its own
        for attempt in range(
            200
        ):  # then, once tokens are back, the connection is served again
            await ann.say("lobby", "later", ref=f"later{attempt}")
            await asyncio.sleep(0.05)
            if any(f"later{n}" in ann.acks for n in range(attempt + 1)):
                break
        else:
            raise AssertionError("the rate limit never let a message through again")
        answers = ann.frames[start:]
        bad_json = [
            f for f in answers if f["type"] == "error" and f["code"] == chat.BAD_JSON
        ]
        limited = [
            f
            for f in answers
            if f["type"] == "error" and f["code"] == chat.RATE_LIMITED
        ]
        assert limited and all("ref" not in f or f["ref"] is None for f in limited)
        assert (
            len(bad_json) >= DEFAULT_CHAT_MESSAGE_BURST - 1
        )  # the bucket's worth was read and answered
        assert len(bad_json) + len(limited) < flood // 10, (
            len(bad_json),
            len(limited),
        )  # was one each: 1,000
        assert "after" not in ann.acks and "after" not in ann.errors
        assert not ann.done


async def test_a_burst_beyond_the_bucket_is_rate_limited_and_the_connection_stays(
    start_chat: StartChat,
) -> None:
    server = await start_chat()
    async with chatting(server, "ann") as (ann,):
        await ann.join("lobby")  # one token
        burst = DEFAULT_CHAT_MESSAGE_BURST * 3
        start = len(ann.frames)
        for i in range(burst):
            await ann.say("lobby", f"burst {i}", ref=f"b{i}")
        await ann.wait_until(
            lambda: ann.of_type("error", start, code=chat.RATE_LIMITED),
            what="the rate_limited notice",
        )
        await asyncio.sleep(0.2)  # every ack of what was read is in
        acked = [f"b{i}" for i in range(burst) if f"b{i}" in ann.acks]
        assert len(acked) >= DEFAULT_CHAT_MESSAGE_BURST - 1
        assert len(acked) < burst, "a burst three times the bucket was not limited"
        assert (
            not ann.errors
        )  # dropped frames get no answer of their own, only the one notice
        assert not ann.done
        # dropped messages were not stored; the connection is still served once tokens come back
        assert len(await all_history_retrying(ann, "lobby")) == len(acked)
        for attempt in range(200):
            ref = f"later{attempt}"
            await ann.say("lobby", "later", ref=ref)
            await asyncio.sleep(0.05)
            if ref in ann.acks:
                break
        else:
            raise AssertionError("the rate limit never let a message through again")


async def all_history_retrying(client: ChatClient, room: str) -> list[dict]:
    """``history`` costs a token too: ask again while it is dropped (rate-limited)."""
    for _ in range(200):
        start = len(client.frames)
        await client.send(type="history", room=room, limit=chat.MAX_HISTORY_LIMIT)
        await asyncio.sleep(0.1)
        answer = client.of_type("history", start)
        if answer:
            return answer[0]["messages"]
    raise AssertionError("history stayed rate-limited")


# -- history ---------------------------------------------------------------------------------


async def test_history_pagination(start_chat: StartChat, no_rate_limit: None) -> None:
    server = await start_chat()
    async with chatting(server, "ann", "bob") as (ann, bob):
        # history is for members (rawws.chat.access), and a member reads from its join on:
        # bob and ann join both rooms before anything is said there
        await bob.join("dev")
        dev_base = (await ann.join("dev"))["last_id"]  # bob's and ann's `joined` events
        await bob.join("lobby")
        base = (await ann.join("lobby"))["last_id"]
        ids = await ann.flood("lobby", 25, prefix="h", window=25)
        assert ids == list(range(base + 1, base + 26))
        assert await bob.flood("dev", 3, prefix="d") == [
            dev_base + 1,
            dev_base + 2,
            dev_base + 3,
        ]
        # history never reaches past what the connection was delivered: all of it, first
        for client in (ann, bob):
            await client.wait_message_id("lobby", base + 25)
        await ann.wait_message_id("dev", dev_base + 3)

        def texts(messages: list[dict]) -> list[str]:
            return [m["text"] for m in messages]

        newest = await history(bob, "lobby", limit=10)
        assert [m["id"] for m in newest] == list(range(base + 16, base + 26))
        assert texts(newest) == [flood_text("h", i, 64) for i in range(15, 25)]
        assert all(
            m["user"] == "ann" and m["room"] == "lobby" and m["type"] == "message"
            for m in newest
        )
        assert [
            m["id"] for m in await history(ann, "lobby", before=base + 16, limit=10)
        ] == list(range(base + 6, base + 16))
        assert [
            m["id"] for m in await history(ann, "lobby", before=base + 6, limit=10)
        ] == list(range(base + 1, base + 6))
        # ann's reading starts at her own `joined` event (base): nothing before it
        assert await history(ann, "lobby", before=base + 1, limit=10) == []
        assert [m["id"] for m in await history(ann, "lobby")] == list(
            range(base + 1, base + 26)
        )  # default limit 50
        assert [
            m["id"] for m in await history(ann, "lobby", before=base + 1000)
        ] == list(range(base + 1, base + 26))
        await ann.join("nowhere")
        assert [m["id"] for m in await history(ann, "dev")] == [
            dev_base + 1,
            dev_base + 2,
            dev_base + 3,
        ]
        assert await history(ann, "nowhere") == []
        # the newest page of a long room is capped at MAX_HISTORY_LIMIT
        await ann.flood("lobby", chat.MAX_HISTORY_LIMIT, prefix="more", window=50)
        await ann.wait_message_id("lobby", base + 25 + chat.MAX_HISTORY_LIMIT)
        capped = await history(ann, "lobby", limit=10_000)
        assert len(capped) == chat.MAX_HISTORY_LIMIT
        assert capped[-1]["id"] == base + 25 + chat.MAX_HISTORY_LIMIT
        assert [m["id"] for m in await all_history(ann, "lobby")] == list(
            range(base + 1, base + 26 + chat.MAX_HISTORY_LIMIT)
        )
        # a history answer equals what members got live (bob's: ann's `joined` event too)
        assert await all_history(ann, "lobby") == ann.messages("lobby")
        await bob.wait_message_id("lobby", base + 25 + chat.MAX_HISTORY_LIMIT)
        assert await all_history(bob, "lobby") == [
            f
            for f in bob.frames
            if f["type"] in ("message", "member") and f.get("room") == "lobby"
        ]


# -- joining with `since`: replay, then live, no gap, no duplicate ------------------------------


@pytest.mark.parametrize("replay_page", [7, DEFAULT_CHAT_REPLAY_PAGE_MESSAGES])
async def test_join_with_since_during_a_flood_gets_every_id_once(
    start_chat: StartChat, no_rate_limit: None, replay_page: int
) -> None:
    server = await start_chat(
        chat_replay_page_messages=replay_page
    )  # small pages: many store round trips
    tokens = await new_users(server, "ann", "bob")
    bob = await connect_chat(server, tokens["bob"], "bob", keep_messages=False)
    bob_joined = await bob.join("lobby")
    # ann is a member before the flood (her first join stores her `joined` event): she reads
    # the room from there on, so each of her joins below may replay all of the flood
    first_ann = await connect_chat(server, tokens["ann"], "ann")
    ann_since = (await first_ann.join("lobby"))["last_id"]
    await close_quietly(first_ann)
    event = await bob.wait_frame("member", room="lobby", user="ann", event="joined")
    assert event["id"] == ann_since == bob_joined["last_id"] + 1
    sent = ann_since  # the last id before the flood
    try:
        for round_ in range(5):
            flood = asyncio.create_task(
                bob.flood("lobby", 300, prefix=f"f{round_}-", window=8)
            )
            await bob.wait_ack(f"f{round_}-20")  # the flood is under way
            current = bob.acks[f"f{round_}-20"]["id"]
            choices = [0, sent, current - 3, current, current + 10_000, None]
            joiners = []
            for since in (
                choices
            ):  # several joins at different points of the flood, each racing it
                client = await connect_chat(
                    server, tokens["ann"], "ann", keep_messages=False
                )
                joined = await client.join("lobby", since=since)
                joiners.append((client, since, joined))
                await asyncio.sleep(0)
            ids = await asyncio.wait_for(flood, TIMEOUT_S * 6)
            sent = ids[-1]
            for client, since, joined in joiners:
                await client.wait_message_id("lobby", sent)
                # a replay never reaches before ann's own `joined` event (her since_id)
                first = (
                    joined["last_id"]
                    if since is None
                    else max(min(since, joined["last_id"]), ann_since)
                ) + 1
                assert_gapless(
                    client.ids["lobby"], first, sent, f"round {round_} since={since}"
                )
                assert client.of_type("member") == []  # ann's later joins store nothing
            await close_quietly(*(client for client, _, _ in joiners))
        # the flooder: ann's `joined` event, then every message
        assert [f["id"] for f in bob.of_type("member", room="lobby")] == [ann_since]
        assert_gapless(bob.ids["lobby"], ann_since + 1, sent, "the flooder")
    finally:
        await close_quietly(bob)


async def test_reconnect_and_resume(start_chat: StartChat, no_rate_limit: None) -> None:
    server = await start_chat()
    tokens = await new_users(server, "ann", "bob")
    bob = await connect_chat(server, tokens["bob"], "bob")
    ann = await connect_chat(server, tokens["ann"], "ann")
    try:
        await bob.join("lobby")
        base = (await ann.join("lobby"))["last_id"]  # after both `joined` events
        assert await bob.flood("lobby", 30, prefix="a") == list(
            range(base + 1, base + 31)
        )
        await ann.wait_message_id("lobby", base + 30)
        seen = ann.message_ids("lobby")[-1]
        assert seen == base + 30
        await ann.close()
        await bob.flood("lobby", 40, prefix="b")  # ann misses seen+1..seen+40
        ann = await connect_chat(server, tokens["ann"], "ann")
        joined = await ann.join("lobby", since=seen)
        assert joined["last_id"] == seen + 40  # her join again stored nothing
        await ann.wait_message_id("lobby", seen + 40)
        await bob.flood("lobby", 10, prefix="c")  # live again: seen+41..seen+50
        await ann.wait_message_id("lobby", seen + 50)
        messages = ann.messages("lobby")
        assert_gapless([m["id"] for m in messages], seen + 1, seen + 50, "resumed")
        assert ann.entry_ids("lobby") == [m["id"] for m in messages]
        expected = [flood_text("b", i, 64) for i in range(40)] + [
            flood_text("c", i, 64) for i in range(10)
        ]
        assert [m["text"] for m in messages] == expected
        # the replayed ones came after `joined`, as the protocol says
        assert ann.frames.index(joined) < ann.frames.index(messages[0])
    finally:
        await close_quietly(ann, bob)


async def test_join_leave_join_at_once_replays_once(
    start_chat: StartChat, no_rate_limit: None
) -> None:
    """A replay still running when its client leaves (and joins again) must stop, not replay twice."""
    server = await start_chat()
    async with chatting(server, "bob", "ann") as (bob, ann):
        await bob.join("lobby")
        # ann becomes a member (her `joined` event) and leaves before the flood: every join
        # with since=0 below replays all of it, from her join on
        base = (await ann.join("lobby"))["last_id"]
        await ann.send(type="leave", room="lobby")
        await ann.wait_frame("left", room="lobby")
        assert await bob.flood("lobby", 50, prefix="x", window=50) == list(
            range(base + 1, base + 51)
        )
        for round_ in range(3):
            start = len(ann.frames)
            frames = [
                {"type": "join", "room": "lobby", "since": 0},
                {"type": "leave", "room": "lobby"},
            ] * 2
            frames.append({"type": "join", "room": "lobby", "since": 0})
            for frame in frames:  # written back to back: one read on the server
                await ann.send_raw(json.dumps(frame))
            await ann.wait_count("left", 2, start=start)
            last_left = ann.frames.index(ann.of_type("left", start)[-1])
            joined = await ann.wait_frame("joined", start=last_left)
            # (from the second round on, ann.ids has base+50 already: wait for this replay's)
            at = ann.frames.index(joined)
            await ann.wait_until(
                lambda at=at: base + 50 in ann.entry_ids("lobby", at),
                what=f"message {base + 50} replayed after the last join",
            )
            after = ann.entry_ids("lobby", at)
            assert_gapless(
                after, base + 1, base + 50, f"round {round_} after the last join"
            )
            assert await sync(ann) == ["ann", "bob"]
            after = ann.entry_ids("lobby", at)
            assert_gapless(after, base + 1, base + 50, f"round {round_}: a late replay")
            assert len(ann.of_type("joined", last_left)) == 1
            start = len(ann.frames)
            await ann.send(type="leave", room="lobby")
            await ann.wait_frame("left", start=start)


# -- slow consumer ------------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def test_a_slow_consumer_is_closed_and_fast_ones_get_everything(
    start_chat: StartChat, no_rate_limit: None
) -> None:
    # ~12 MB in all: well beyond what the slow socket's kernel buffers (the server's send buffer
    # autotunes to a few MiB), the transport's high water and the outbox hold together.
    readers_count, messages, size = 50, 3000, chat.MAX_TEXT_CHARS
    server = await start_chat(
        outbox_max_bytes=256 * 1024,
        outbox_max_messages=512,
        write_high_water_bytes=32 * 1024,
        ping_interval_s=0,
        close_timeout_s=120,  # the 1008 close frame waits (queued) until the slow one reads at last
    )
    names = [f"reader{i}" for i in range(5)] + ["sender", "slow"]
    tokens = await new_users(server, *names)
    sender = await connect_chat(server, tokens["sender"], "sender", keep_messages=False)
    sender_joined = await sender.join("lobby")
    # the slow one: a raw socket with a small receive buffer that joins and never reads
    slow = await raw_chat_socket(server.port, tokens["slow"])
    await slow.send(client_text_frame({"type": "join", "room": "lobby"}))
    await sender.wait_frame("presence", user="slow", event="joined")
    readers: list[ChatClient] = []
    try:
        for i in range(readers_count):
            name = f"reader{i % 5}"
            reader = await connect_chat(server, tokens[name], name, keep_messages=False)
            await reader.join("lobby")
            readers.append(reader)
        # the first join of each user stored a `joined` event (the slow one's and the five
        # readers'; their other connections stored nothing): the sender got them all, in order
        events = await sender.wait_count("member", 6, room="lobby")
        first_event = sender_joined["last_id"] + 1
        assert [(e["id"], e["event"]) for e in events] == [
            (first_event + n, "joined") for n in range(6)
        ]
        assert sorted(e["user"] for e in events) == sorted(set(names) - {"sender"})
        base = events[-1]["id"]  # the messages come after
        assert (await healthz(server.port))["slow_consumers_closed"] == 0
        before = rss_bytes()

        ids = await sender.flood(
            "lobby", messages, prefix="s", size=size, window=64, timeout=TIMEOUT_S * 3
        )
        assert ids == list(range(base + 1, base + messages + 1))
        for reader in readers:
            await reader.wait_message_id(
                "lobby", base + messages, timeout=TIMEOUT_S * 6
            )
        for n, reader in enumerate(readers):
            assert_gapless(
                reader.ids["lobby"], base + 1, base + messages, f"reader {n}"
            )
            assert not reader.done
        assert_gapless(sender.ids["lobby"], base + 1, base + messages, "sender")
        assert len(sender.of_type("member")) == 6  # no more events came

        # the slow one was closed, and only it; memory stayed bounded meanwhile
        assert (await healthz(server.port))["slow_consumers_closed"] == 1
        after = rss_bytes()
        assert after - before < 100 * 1024 * 1024, (
            f"RSS grew by {(after - before) >> 20} MiB"
        )

        # what the slow one finally reads: its frames in order, then 1008 "slow consumer" (EOF would
        # also do, had the close timed out first: close_timeout_s is long here so it cannot); nothing after
        frames, eof = await slow.read_until_close(TIMEOUT_S * 3)
        assert not eof, "EOF without a close frame"
        texts = [json.loads(payload) for opcode, payload in frames if opcode == 0x1]
        assert [t["type"] for t in texts[:2]] == ["welcome", "joined"]
        # every entry from its join on (the readers' `joined` events, then messages), in
        # order, until it was closed: not all the messages
        got = [t["id"] for t in texts if t["type"] in ("message", "member")]
        first = texts[1]["last_id"] + 1
        assert got == list(range(first, first + len(got)))
        assert len([t for t in texts if t["type"] == "message"]) < messages
        if not eof:
            opcode, payload = frames[-1]
            assert (
                opcode == 0x8
                and close_code(payload) == 1008
                and payload[2:] == b"slow consumer"
            )
            assert [op for op, _ in frames].count(0x8) == 1
            await slow.send(
                masked_frame(0x8, payload[:2])
            )  # finish the closing handshake
            rest, closed = await slow.read_to_eof(TIMEOUT_S)
            assert closed and rest == b"", f"after the close frame: {rest[:60]!r}"
        await sender.wait_frame(
            "presence", user="slow", event="left", timeout=TIMEOUT_S * 3
        )
        assert (await healthz(server.port))["websockets"] == readers_count + 1
    finally:
        slow.close()
        await close_quietly(sender, *readers)


async def test_a_replay_larger_than_the_outbox_does_not_close_the_client(
    start_chat: StartChat, no_rate_limit: None
) -> None:
    """A reconnecting client with a long backlog is fed at the pace of its socket, not closed as slow."""
    server = await start_chat(
        outbox_max_bytes=64 * 1024,
        outbox_max_messages=64,
        write_high_water_bytes=16 * 1024,
    )
    tokens = await new_users(server, "ann", "bob")
    bob = await connect_chat(server, tokens["bob"], "bob", keep_messages=False)
    await bob.join("lobby")
    # ann is a member (her `joined` event) and goes away before the messages are said
    ann = await connect_chat(server, tokens["ann"], "ann", keep_messages=False)
    base = (await ann.join("lobby"))["last_id"]
    await ann.close()
    ids = await bob.flood(
        "lobby", 2000, prefix="p", size=512, window=32, timeout=TIMEOUT_S * 3
    )
    assert ids == list(range(base + 1, base + 2001))
    ann = await connect_chat(server, tokens["ann"], "ann", keep_messages=False)
    try:
        await ann.join("lobby", since=0)  # all she may read: from her join on
        await ann.wait_message_id("lobby", base + 2000, timeout=TIMEOUT_S * 3)
        assert_gapless(ann.ids["lobby"], base + 1, base + 2000, "replayed")
        assert (await healthz(server.port))["slow_consumers_closed"] == 0
    finally:
        await close_quietly(ann, bob)


# -- restart and shutdown ------------------------------------------------------------------------


async def test_messages_survive_a_restart_and_ids_continue(
    start_chat: StartChat, no_rate_limit: None
) -> None:
    server = await start_chat()
    data_dir = server.config.data_dir
    tokens = await new_users(server, "ann", "bob")
    ann = await connect_chat(server, tokens["ann"], "ann")
    bob = await connect_chat(server, tokens["bob"], "bob")
    lobby_base = (await ann.join("lobby"))["last_id"]  # ann's `joined` event
    await bob.join("dev")
    # history is for members, from their join on: ann joins dev before bob speaks there
    dev_base = (await ann.join("dev"))["last_id"]
    lobby_ids = await ann.flood("lobby", 12, prefix="l")
    dev_ids = await bob.flood("dev", 5, prefix="d")
    # history reaches as far as the connection was delivered: all of it, first
    await ann.wait_message_id("lobby", lobby_ids[-1])
    await ann.wait_message_id("dev", dev_ids[-1])
    before = {"lobby": await history(ann, "lobby"), "dev": await history(ann, "dev")}
    await asyncio.wait_for(server.shutdown(), TIMEOUT_S * 2)
    for client in (ann, bob):
        await client.wait_closed()
        assert client.close_code == 1001

    server = await start_chat(data_dir=data_dir)
    token = await login(server.port, "ann")  # the accounts survive too
    ann = await connect_chat(server, token, "ann")
    bob = await connect_chat(
        server, tokens["bob"], "bob"
    )  # and the signing secret: old tokens still work
    try:
        # the two last of the twelve; joining again stores nothing, so the last id is still
        # the twelfth message's
        joined = await ann.join("lobby", since=lobby_ids[-3])
        assert joined["last_id"] == lobby_ids[-1]
        await ann.wait_message_id("lobby", lobby_ids[-1])
        assert ann.message_ids("lobby") == lobby_ids[-2:]
        await ann.join("dev")
        assert await history(ann, "lobby") == before["lobby"]
        assert await history(ann, "dev") == before["dev"]
        assert [m["id"] for m in before["lobby"]] == lobby_ids
        assert lobby_ids == list(range(lobby_base + 1, lobby_base + 13))
        assert [m["id"] for m in before["dev"]] == dev_ids
        assert dev_ids == list(range(dev_base + 1, dev_base + 6))
        # the ids go on from the last stored one
        await ann.say("lobby", "after the restart", ref="new")
        assert (await ann.wait_ack("new"))["id"] == lobby_ids[-1] + 1
        await bob.join("dev")
        await bob.say("dev", "dev again", ref="new")
        assert (await bob.wait_ack("new"))["id"] == dev_ids[-1] + 1
    finally:
        await close_quietly(ann, bob)


async def test_shutdown_stores_every_accepted_message(
    start_chat: StartChat, no_rate_limit: None
) -> None:
    """Messages still waiting for their commit when the server stops are stored: none acked is lost."""
    server = await start_chat()
    data_dir = server.config.data_dir
    handler = chat_handler(server)
    store = handler.writer.store
    real_append = store.append_messages
    commits_started = asyncio.Event()

    async def slow_append(batch):
        commits_started.set()
        await asyncio.sleep(
            0.02
        )  # commits take a while: submissions pile up behind them
        return await real_append(batch)

    store.append_messages = slow_append  # type: ignore[method-assign]
    accepted: list[str] = []
    real_submit = handler.writer.submit

    def counting_submit(item, on_stored, on_failed):
        accepted.append(item.text)
        real_submit(item, on_stored, on_failed)

    handler.writer.submit = counting_submit  # type: ignore[method-assign]

    tokens = await new_users(server, "ann", "bob")
    clients = [
        await connect_chat(server, tokens[name], name) for name in ("ann", "bob")
    ]
    ann_since = (await clients[0].join("lobby"))["last_id"]  # ann's `joined` event
    base = (await clients[1].join("lobby"))["last_id"]  # bob's: the messages come after
    texts = {
        client.user: [f"{client.user} {i}" for i in range(300)] for client in clients
    }

    async def pour(client: ChatClient) -> None:
        with contextlib.suppress(Exception):  # the server going away stops the pour
            for i, text in enumerate(texts[client.user]):
                await client.say("lobby", text, ref=f"{client.user}{i}")

    pours = [asyncio.create_task(pour(client)) for client in clients]
    await asyncio.wait_for(commits_started.wait(), TIMEOUT_S)
    await clients[0].wait_until(lambda: len(clients[0].acks) >= 5, what="a few acks")
    await asyncio.wait_for(server.shutdown(), TIMEOUT_S * 3)
    await asyncio.wait_for(asyncio.gather(*pours), TIMEOUT_S)
    for client in clients:
        await client.wait_closed()
    acked = sum(len(client.acks) for client in clients)
    assert acked, "nothing was acknowledged before the shutdown"
    assert len(accepted) > acked, (
        "the shutdown did not catch messages between submit and commit"
    )

    server = await start_chat(data_dir=data_dir)
    reader = await connect_chat(server, await login(server.port, "ann"), "ann")
    try:
        # ann again: her join stores nothing, and she reads from her first join on
        await reader.join("lobby")
        entries = await all_history(reader, "lobby")
        assert [m["id"] for m in entries] == list(
            range(ann_since + 1, ann_since + len(entries) + 1)
        )
        # bob's `joined` event, then every stored message
        events = [
            (m["id"], m["event"], m["user"]) for m in entries if m["type"] == "member"
        ]
        assert events == [(base, "joined", "bob")]
        stored = [m for m in entries if m["type"] == "message"]
        assert [m["id"] for m in stored] == list(
            range(base + 1, base + len(stored) + 1)
        )
        by_id = {m["id"]: m for m in stored}
        for client in clients:
            for ref, ack in client.acks.items():
                message = by_id.get(ack["id"])
                assert message is not None, (
                    f"acked {ref} (id {ack['id']}) is not stored"
                )
                assert (
                    message["text"] == texts[client.user][int(ref[len(client.user) :])]
                )
                assert message["user"] == client.user
        assert sorted(m["text"] for m in stored) == sorted(accepted), (
            "an accepted message was lost or doubled"
        )
    finally:
        await close_quietly(reader)


# -- failures and resources -----------------------------------------------------------------------


async def test_a_failed_replay_can_be_joined_again(
    start_chat: StartChat, no_rate_limit: None
) -> None:
    """`could not load …; join again` must be true: the failed join leaves the room."""
    server = await start_chat()
    store = chat_handler(server).store
    async with chatting(server, "bob", "ann") as (bob, ann):
        await bob.join("lobby")
        # ann becomes a member and leaves before the messages: joining with since=0 then
        # has them to replay
        base = (await ann.join("lobby"))["last_id"]
        await ann.send(type="leave", room="lobby")
        await ann.wait_frame("left", room="lobby")
        assert await bob.flood("lobby", 10, prefix="m") == list(
            range(base + 1, base + 11)
        )
        real = store.messages_after
        failures = [RuntimeError("the database is down")]

        async def failing_once(*args, **kwargs):
            if failures:
                raise failures.pop()
            return await real(*args, **kwargs)

        store.messages_after = failing_once  # type: ignore[method-assign]
        start, bob_start = len(ann.frames), len(bob.frames)
        await ann.send(type="join", room="lobby", since=0)
        error = await ann.wait_frame("error", start=start)
        assert error["code"] == chat.UNAVAILABLE
        assert failures == []  # the replay's query is what failed
        await bob.wait_frame("presence", start=bob_start, user="ann", event="left")
        assert await sync(bob) == ["bob"]
        await ann.join("lobby", since=0)  # not "already in lobby"
        await ann.wait_message_id("lobby", base + 10)
        assert_gapless(ann.message_ids("lobby"), base + 1, base + 10, "joined again")


async def test_a_closed_connection_is_not_kept_alive_by_the_rate_limiter(
    start_chat: StartChat,
) -> None:
    """The per-connection buckets outlive connections: they must not hold the session (and its buffers)."""
    import gc
    import weakref

    server = await start_chat()
    tokens = await new_users(server, "ann")
    ann = await connect_chat(server, tokens["ann"], "ann", compression="deflate")
    await ann.join("lobby")  # takes a token: the connection has a bucket now
    (session,) = server.connections
    ref = weakref.ref(session)
    del session
    await ann.close()
    await wait_until_true(
        lambda: not server.connections, what="the server to drop the session"
    )
    for _ in range(3):
        gc.collect()
        await asyncio.sleep(0)
    assert ref() is None, (
        f"a closed session is still referenced by {[type(r).__name__ for r in gc.get_referrers(ref())]}"
    )


async def wait_until_true(
    predicate: Callable[[], bool], *, timeout: float = TIMEOUT_S, what: str = ""
) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"no {what} within {timeout}s") from None


async def test_shutdown_waits_for_a_replay_query_cut_short(
    start_chat: StartChat, db_url: str | None
) -> None:
    """A replay whose connection closes mid-query is cancelled; its database connection unwinds after.
    The shutdown must wait for that before closing the store, or the task hangs the loop's exit."""
    import sqlalchemy as sa

    server = await start_chat()
    handler = chat_handler(server)
    store = handler.store
    real = store.messages_after
    started = asyncio.Event()
    slow_sql = (
        "SELECT pg_sleep(1.5)"
        if db_url
        else "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT count(*) FROM c"
    )

    async def slow_messages_after(*args, **kwargs):
        started.set()
        async with (
            store.engine.connect() as conn
        ):  # a query that is still running at shutdown
            await conn.execute(sa.text(slow_sql))
        return await real(*args, **kwargs)

    tokens = await new_users(server, "ann", "bob")
    bob = await connect_chat(server, tokens["bob"], "bob")
    await bob.join("lobby")
    # ann is a member before the messages (she reads from her join on), then goes away
    ann = await connect_chat(server, tokens["ann"], "ann")
    await ann.join("lobby")
    await ann.close()
    await bob.flood("lobby", 3, prefix="m")
    store.messages_after = slow_messages_after  # type: ignore[method-assign]
    ann = await connect_chat(server, tokens["ann"], "ann")
    await ann.send(type="join", room="lobby", since=0)  # three messages to replay
    await asyncio.wait_for(started.wait(), TIMEOUT_S)
    await asyncio.wait_for(server.shutdown(), TIMEOUT_S * 2)
    lingering = [
        task
        for task in asyncio.all_tasks()
        if "_catch_up" in repr(task)
        or "terminate" in repr(task).lower()
        or "_cancel" in repr(task)
    ]
    assert lingering == [], f"still running after the shutdown: {lingering}"
    await close_quietly(ann, bob)
