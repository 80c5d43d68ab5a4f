"""A reconnect with a ``since`` older than what retention kept gets a ``gap`` frame saying
what was cut, then what is kept, in order, once: never a silent gap (on SQLite and PostgreSQL)."""

from __future__ import annotations

from rawws.chat.retention import RetentionSweep
from rawws.chat.service import ChatHandler
from rawws.server.server import Server
from tests.chat.test_chat import StartChat, start_chat
from tests.support.chat_client import chatting

start_chat = start_chat  # the fixture, by name


def chat_handler(server: Server) -> ChatHandler:
    handler = server.endpoints["/ws"].handler
    assert isinstance(handler, ChatHandler)
    return handler


async def test_a_since_older_than_what_is_kept_gets_a_gap_then_the_rest(
    start_chat: StartChat,
) -> None:
    server = await start_chat()
    async with chatting(server, "ann", "bob", keep_messages=True) as (ann, bob):
        await ann.join("den")
        base = (await bob.join("den"))["last_id"]  # bob's first join: his membership
        for n in range(10):
            await ann.say("den", f"m{n}", ref=f"r{n}")
        ids = [(await ann.wait_ack(f"r{n}"))["id"] for n in range(10)]
        await bob.wait_message_id("den", ids[-1])
        await bob.send(type="leave", room="den")
        await bob.wait_frame("left", room="den")

        sweep = RetentionSweep(chat_handler(server).store, 0, 4)  # the newest 4 kept
        assert await sweep.sweep_once() > 0
        start = len(bob.frames)
        await bob.join("den", since=base)  # he read nothing of it
        await bob.wait_until(
            lambda: ids[-1] in bob.message_ids("den", start), what="the replay"
        )
        [gap] = bob.of_type("gap", start=start, room="den")
        assert gap == {
            "type": "gap",
            "room": "den",
            "after": base,
            "resumes_at": ids[-4],
        }
        assert (
            bob.message_ids("den", start) == ids[-4:]
        )  # the kept ones, once, in order
        gap_at = bob.frames.index(gap, start)
        first = bob.frames.index(bob.messages("den", start)[0], start)
        assert gap_at < first  # said before what is kept

        # A since within what is kept: no gap.
        await bob.send(type="leave", room="den")
        await bob.wait_frame("left", room="den")
        start = len(bob.frames)
        await bob.join("den", since=ids[-2])
        await bob.wait_until(
            lambda: ids[-1] in bob.message_ids("den", start), what="the replay"
        )
        assert bob.of_type("gap", start=start) == []


async def test_a_since_with_everything_after_it_removed_is_told_where_it_resumes(
    start_chat: StartChat,
) -> None:
    server = await start_chat()
    async with chatting(server, "cyd", keep_messages=True) as (cyd,):
        base = (await cyd.join("attic"))["last_id"]
        for n in range(3):
            await cyd.say("attic", f"old {n}", ref=f"o{n}")
        last = (await cyd.wait_ack("o2"))["id"]
        await cyd.send(type="leave", room="attic")
        await cyd.wait_frame("left", room="attic")
        handler = chat_handler(server)
        sweep = RetentionSweep(handler.store, 1, 0, clock=lambda: 10.0**12)  # all old
        await sweep.sweep_once()
        start = len(cyd.frames)
        joined = await cyd.join("attic", since=base)
        assert joined["last_id"] == last
        gap = await cyd.wait_frame("gap", start=start, room="attic")
        assert (gap["after"], gap["resumes_at"]) == (base, last + 1)
        assert cyd.messages("attic", start) == []
