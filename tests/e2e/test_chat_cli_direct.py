"""The terminal chat's ``/msg USER TEXT`` and direct rooms in ``/rooms``: typed lines, frames and
lines shown (no I/O), then two terminals through a real server."""

from __future__ import annotations

import asyncio
import json

import pytest

from rawws.chat.doors import direct_name
from rawws.chatclient.commands import BadInput, MessageUser, parse_input
from rawws.chatclient.state import ChatState
from tests.e2e.test_chat_cli import (
    expect,
    frame,
    shown,
    two_terminals,
    type_line,
)

ROOM = direct_name("ada", "bob")


def test_msg_lines_are_parsed() -> None:
    assert parse_input("/msg Bob hi  there ") == MessageUser("Bob", "hi  there ")


@pytest.mark.parametrize(
    "line", ["/msg", "/msg bob", "/msg bob   ", "/msg " + "b" * 33 + " hi"]
)
def test_bad_msg_lines_say_what_is_wrong(line: str) -> None:
    assert isinstance(parse_input(line), BadInput)


def sent(frames: list[str]) -> list[dict]:
    return [json.loads(f) for f in frames]


def test_msg_asks_for_the_room_joins_it_and_says_once_joined() -> None:
    state = ChatState("lobby")
    state.on_connected()
    state.receive(frame("joined", room="lobby", users=["ada"], last_id=0))
    assert sent(state.command(MessageUser("bob", "psst")).send) == [
        {"type": "dm", "user": "bob", "ref": "dm1"}
    ]
    answer = state.receive(frame("direct", room=ROOM, user="bob", ref="dm1"))
    assert sent(answer.send) == [
        {"type": "join", "room": ROOM, "since": 0}
    ]  # not the say yet
    assert answer.show == [f"* direct room with bob: {ROOM}"]
    assert state.current == "lobby"
    joined = state.receive(frame("joined", room=ROOM, users=["ada"], last_id=0))
    assert sent(joined.send) == [
        {"type": "say", "room": ROOM, "text": "psst", "ref": "c2"}
    ]
    # the room is joined now: a second /msg says at once after the answer
    state.command(MessageUser("bob", "again"))
    again = state.receive(frame("direct", room=ROOM, user="bob", ref="dm3"))
    assert sent(again.send) == [
        {"type": "say", "room": ROOM, "text": "again", "ref": "c4"}
    ]


def test_the_other_user_is_joined_to_the_room_and_told() -> None:
    state = ChatState("lobby")
    state.on_connected()
    told = state.receive(frame("direct", room=ROOM, user="ada"))
    assert sent(told.send) == [{"type": "join", "room": ROOM, "since": 0}]
    assert told.show == [
        f"* direct room with ada: {ROOM} (ada opened it; /msg ada TEXT answers)"
    ]


def test_a_refused_or_dropped_msg_is_reported() -> None:
    state = ChatState("lobby")
    state.on_connected()
    state.command(MessageUser("nobody", "hello"))
    refused = frame("error", code="no_such_user", message="no user nobody", ref="dm1")
    assert shown(state, refused) == [
        "! /msg to nobody not sent: no user nobody: “hello”"
    ]
    state.command(MessageUser("bob", "lost"))
    assert state.on_disconnected().show == [
        "! /msg to bob not sent before the connection dropped: “lost”"
    ]


def test_rooms_shows_a_direct_room_with_the_other_user() -> None:
    state = ChatState("lobby")
    listed = frame(
        "rooms",
        rooms=[{"room": ROOM, "kind": "direct", "role": "member", "user": "bob"}],
        ref=None,
    )
    assert shown(state, listed) == [
        f"* rooms you may join: {ROOM} (direct with bob, member)"
    ]


async def test_two_terminals_talk_in_their_direct_room(start_server) -> None:
    async with two_terminals(start_server) as (ada, bob):
        await type_line(ada, "/msg bob just between us")
        await expect(ada, f"[{ROOM}] ada: just between us")
        await expect(bob, f"[{ROOM}] ada: just between us")
        await type_line(bob, "/msg ada likewise")
        await expect(ada, f"[{ROOM}] bob: likewise")
        await type_line(bob, "/rooms")
        await expect(bob, f"{ROOM} (direct with ada, member, joined")  # unread or not
        await type_line(ada, "/msg ada me")
        await expect(ada, "! /msg to ada not sent: a direct room is with someone else")


async def test_what_the_terminal_printed_is_read(start_server) -> None:
    """`rawws chat` sends read markers for what it showed: the unread count of bob's lobby,
    which ada's message raised, goes back to none without bob typing anything but /rooms."""
    async with two_terminals(start_server) as (ada, bob):
        await type_line(ada, "read me")
        await expect(bob, "[lobby] ada: read me")
        for _ in range(
            60
        ):  # the marker goes within READ_EVERY_S; each look is one /rooms
            await type_line(bob, "/rooms")
            seen = await asyncio.to_thread(
                bob.expect,
                [
                    r"lobby \(public, member, joined\)",
                    r"lobby \(public, member, joined, \d+ unread\)",
                ],
            )
            if seen == 0:
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError("bob's lobby kept an unread count")
