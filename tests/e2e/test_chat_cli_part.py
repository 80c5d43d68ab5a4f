"""The terminal chat's ``/part``: leaving a room for good (``leave`` with ``for_good``), and the
membership events of a member's own doing (``joined``, ``left``) in words: typed lines, frames
and lines shown (no I/O), then two terminals through a real server."""

from __future__ import annotations

import asyncio
import json

import pytest

from rawws.chat.client_frames import leave_frame
from rawws.chatclient.commands import HELP, BadInput, LeaveRoom, PartRoom, parse_input
from rawws.chatclient.state import ChatState
from tests.e2e.test_chat_cli import (
    expect,
    frame,
    message,
    output_of,
    shown,
    two_terminals,
    type_line,
)

DIRECT = "~" + "0" * 24


def sent(state: ChatState, line: str) -> list[dict[str, object]]:
    command = parse_input(line)
    assert command is not None
    return [json.loads(f) for f in state.command(command).send]


def joined(*rooms: str) -> ChatState:
    """Signed in as ann, in ``rooms`` (the first one first), the last one current."""
    state = ChatState(rooms[0])
    state.on_connected()
    shown(state, frame("welcome", user="ann", rooms=[rooms[0]]))
    for room in rooms:
        if room != rooms[0]:
            state.command(parse_input(f"/join {room}"))  # type: ignore[arg-type]
        shown(state, frame("joined", room=room, users=["ann"], last_id=0))
        shown(state, frame("history", room=room, messages=[]))  # the join's recent ones
    return state


def test_the_leave_frame_says_for_good_only_when_it_is() -> None:
    assert json.loads(leave_frame("dev")) == {"type": "leave", "room": "dev"}
    assert json.loads(leave_frame("dev", for_good=True)) == {
        "type": "leave",
        "room": "dev",
        "for_good": True,
    }


def test_part_lines_are_parsed() -> None:
    assert parse_input("/part") == PartRoom(None)
    assert parse_input("/PART dev") == PartRoom("dev")
    assert parse_input("/leave dev") == LeaveRoom("dev")  # a plain leave stays one
    assert any("/part [ROOM]" in line for line in HELP)
    leave = next(i for i, line in enumerate(HELP) if "/leave [ROOM]" in line)
    assert "/part [ROOM]" in HELP[leave + 1]


@pytest.mark.parametrize("line", ["/part a b", "/part Dev", "/part -x"])
def test_bad_part_lines_say_what_is_wrong(line: str) -> None:
    command = parse_input(line)
    assert isinstance(command, BadInput) and command.message


def test_part_sends_leave_for_good_and_drops_the_room_when_answered() -> None:
    state = joined("lobby", "dev")
    assert sent(state, "/part") == [{"type": "leave", "room": "dev", "for_good": True}]
    assert list(state.rooms) == [
        "lobby",
        "dev",
    ]  # until the server answers: it may refuse
    lines = shown(state, frame("left", room="dev", id=7))
    assert lines == ["* you left dev for good", "* talking in lobby"]
    assert list(state.rooms) == ["lobby"] and state.current == "lobby"
    assert sent(state, "/part lobby") == [
        {"type": "leave", "room": "lobby", "for_good": True}
    ]
    assert shown(state, frame("left", room="lobby", id=3)) == [
        "* you left lobby for good",
        "* you are in no room now: /join ROOM",
    ]
    assert state.current is None
    assert [json.loads(f) for f in state.on_connected().send] == []  # not joined again


def test_a_part_of_a_room_not_current_keeps_the_current_one() -> None:
    state = joined("lobby", "dev")
    assert sent(state, "/part lobby") == [
        {"type": "leave", "room": "lobby", "for_good": True}
    ]
    assert shown(state, frame("left", room="lobby", id=4)) == [
        "* you left lobby for good"
    ]
    assert list(state.rooms) == ["dev"] and state.current == "dev"


def test_a_plain_leave_still_drops_the_room_at_once_and_says_left() -> None:
    state = joined("lobby", "dev")
    assert sent(state, "/leave") == [{"type": "leave", "room": "dev"}]
    assert list(state.rooms) == ["lobby"]
    assert shown(state, frame("left", room="dev")) == ["* left dev"]
    # A part, then a plain leave and a join again before the part's answer: the answer
    # does not drop the room joined anew.
    state.command(parse_input("/part lobby"))  # type: ignore[arg-type]
    state.command(parse_input("/leave lobby"))  # type: ignore[arg-type]
    state.command(parse_input("/join lobby"))  # type: ignore[arg-type]
    assert shown(state, frame("left", room="lobby", id=5)) == [
        "* you left lobby for good"
    ]
    assert "lobby" in state.rooms


def test_a_refused_part_keeps_the_room_and_says_why() -> None:
    state = joined("lobby", "plaza")
    assert sent(state, "/part") == [
        {"type": "leave", "room": "plaza", "for_good": True}
    ]
    refusal = frame("error", code="forbidden", message="hand the room over first")
    assert shown(state, refusal) == ["! hand the room over first"]
    assert list(state.rooms) == ["lobby", "plaza"] and state.current == "plaza"
    # No longer being parted: a dropped connection joins it again.
    assert state.on_disconnected().show == []
    joins = [json.loads(f) for f in state.on_connected().send]
    assert [j["room"] for j in joins] == ["lobby", "plaza"]


def test_part_is_refused_here_for_a_direct_room_and_a_room_not_joined() -> None:
    state = joined("lobby", DIRECT)
    out = state.command(PartRoom(None))
    assert out.send == []
    assert out.show == ["! nobody leaves a direct room for good: /leave closes it here"]
    out = state.command(PartRoom("dev"))
    assert (out.send, out.show) == ([], ["! you are not in dev"])
    assert list(state.rooms) == ["lobby", DIRECT]


def test_a_part_unanswered_when_the_connection_drops_is_not_joined_again() -> None:
    state = joined("lobby", "dev")
    state.command(PartRoom(None))
    lines = state.on_disconnected().show
    assert lines == [
        "! the connection dropped before /part dev was answered; not joining it again"
        " (/rooms tells whether you are still a member)"
    ]
    assert state.current == "lobby"
    assert [json.loads(f)["room"] for f in state.on_connected().send] == ["lobby"]


def test_removed_because_we_left_on_another_connection_is_said_quietly() -> None:
    state = joined("lobby", "dev")
    removed = frame("removed", room="dev", id=9, reason="left", by="ann")
    assert shown(state, removed) == ["* you left dev for good", "* talking in lobby"]
    assert list(state.rooms) == ["lobby"]
    kicked = frame("removed", room="lobby", id=3, reason="kicked", by="bob")
    assert shown(state, kicked)[0] == "! you were kicked from lobby by bob"


def test_joined_and_left_events_are_shown_in_words_and_count_as_ids() -> None:
    state = joined("lobby")
    came = frame(
        "member", room="lobby", id=1, event="joined", user="bob", by="bob", ts=0
    )
    went = frame("member", room="lobby", id=3, event="left", user="bob", by="bob", ts=0)
    said = state.formatter.message(json.loads(message("lobby", 2)))
    assert shown(state, came, message("lobby", 2), went) == [
        "* bob joined lobby as a new member",
        said,
        "* bob left lobby for good",
    ]
    assert shown(state, came, went) == []  # once
    assert state.rooms["lobby"].since == 3
    page = frame(
        "history",
        room="lobby",
        messages=[json.loads(came), json.loads(message("lobby", 2)), json.loads(went)],
    )
    assert shown(state, page)[1:] == [
        "* bob joined lobby as a new member",
        said,
        "* bob left lobby for good",
    ]


async def test_a_terminal_parts_a_public_room_and_joins_it_again(start_server) -> None:
    """bob parts the lobby for good: ada is told, bob is in no room; bob's join again is a new
    membership, which ada is told too. ada's /part of a room she owns is refused in words."""
    async with two_terminals(start_server) as (ada, bob):
        await type_line(ada, "hello before")
        await expect(bob, "[lobby] ada: hello before")
        await type_line(bob, "/part")
        await expect(bob, "* you left lobby for good")
        await expect(bob, "* you are in no room now: /join ROOM")
        await expect(ada, "* bob left lobby for good")
        await type_line(bob, "/join lobby")
        await expect(bob, "* joined lobby")
        await expect(ada, "* bob joined lobby as a new member")
        await type_line(bob, "/history")  # reading starts at the join again
        await asyncio.to_thread(
            bob.expect,
            r"\* (no messages in lobby yet|the last \d+ messages? of lobby:)",
        )
        await type_line(ada, "/create plaza")
        await expect(ada, "* made public room plaza, yours")
        await type_line(ada, "/join plaza")
        await expect(ada, "* joined plaza")
        await type_line(ada, "/part")
        await expect(ada, "! you own plaza: hand it over first")
        await type_line(ada, "/rooms")
        await expect(ada, "* rooms: lobby, plaza (current)")
        assert "you left plaza" not in output_of(ada)
        assert "hello before" not in output_of(bob).split("* joined lobby")[-1]
