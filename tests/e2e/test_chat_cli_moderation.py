"""The terminal chat's moderation: ``/kick``, ``/ban``, ``/unban``, ``/mute``, ``/unmute``, ``/role``
as typed lines and frames, and the membership events shown (no I/O), then through a real server."""

from __future__ import annotations

import json

import pytest

from rawws.chatclient.commands import BadInput, Moderate, parse_input
from rawws.chatclient.state import ChatState
from tests.e2e.test_chat_cli import (
    expect,
    frame,
    make_private_room,
    message,
    output_of,
    shown,
    two_terminals,
    type_line,
)


def test_moderation_lines_are_parsed_and_send_their_frames() -> None:
    state = ChatState("lobby")
    state.on_connected()
    lines = {
        "/kick lobby bob": {"type": "kick", "room": "lobby", "user": "bob", "ref": None},
        "/ban lobby bob": {"type": "ban", "room": "lobby", "user": "bob", "ref": None},
        "/unban lobby bob": {"type": "unban", "room": "lobby", "user": "bob", "ref": None},
        "/unmute lobby bob": {"type": "unmute", "room": "lobby", "user": "bob", "ref": None},
        "/mute lobby bob 60": {
            "type": "mute", "room": "lobby", "user": "bob", "ref": None, "seconds": 60,
        },
        "/role den.abcdefgh bob moderator": {
            "type": "role", "room": "den.abcdefgh", "user": "bob", "ref": None,
            "role": "moderator",
        },
    }  # fmt: skip
    for line, sent in lines.items():
        command = parse_input(line)
        assert isinstance(command, Moderate), line
        assert [json.loads(f) for f in state.command(command).send] == [sent], line


@pytest.mark.parametrize(
    "line",
    [
        "/kick lobby",
        "/kick Lobby bob",
        "/ban lobby bob cy",
        "/mute lobby bob",
        "/mute lobby bob 0",
        "/mute lobby bob soon",
        "/mute lobby bob 99999999",
        "/role lobby bob king",
        "/role lobby bob",
    ],
)
def test_bad_moderation_lines_say_what_is_wrong(line: str) -> None:
    assert isinstance(parse_input(line), BadInput)


def test_membership_events_count_as_ids_and_removed_drops_the_room() -> None:
    state = ChatState("lobby")
    state.on_connected()
    shown(state, frame("welcome", user="ann", rooms=["lobby"]))
    shown(state, frame("joined", room="lobby", users=[], last_id=0))
    shown(state, frame("history", room="lobby", messages=[]))  # the join's recent ones
    kicked = frame(
        "member", room="lobby", id=2, event="kicked", user="cy", by="bob", ts=0
    )
    said = state.formatter.message(json.loads(message("lobby", 1)))
    assert shown(state, message("lobby", 1), kicked) == [
        said,
        "* cy was kicked in lobby by bob",
    ]
    assert shown(state, kicked) == []  # once
    assert state.rooms["lobby"].since == 2  # the event's id counts: since stays exact
    muted = frame(
        "member",
        room="lobby",
        id=3,
        event="role",
        user="cy",
        by="bob",
        ts=0,
        role="moderator",
    )
    assert shown(state, muted) == ["* cy is now moderator in lobby by bob"]
    done = frame("moderated", ref=None, room="lobby", user="cy", event="banned", id=4)
    assert shown(state, done) == ["* done: cy was banned in lobby"]
    page = frame(
        "history",
        room="lobby",
        messages=[json.loads(message("lobby", 1)), json.loads(kicked)],
    )
    assert shown(state, page)[1:] == [said, "* cy was kicked in lobby by bob"]
    removed = frame("removed", room="lobby", id=5, reason="banned", by="bob")
    lines = shown(state, removed)
    assert lines[0] == "! you were banned from lobby by bob"
    assert "lobby" not in state.rooms  # not re-joined after a reconnect
    assert [json.loads(f) for f in state.on_connected().send] == []


async def test_a_terminal_kicks_another_out_of_a_private_room(start_server) -> None:
    async with two_terminals(start_server) as (ada, bob):
        den = await make_private_room(ada)
        await type_line(ada, f"/invite {den} bob")
        await expect(bob, f"* ada invited you to {den}; /join {den}")
        await type_line(ada, f"/join {den}")
        await expect(ada, f"* joined {den}")
        await type_line(bob, f"/join {den}")
        await expect(bob, f"* joined {den}")
        await type_line(ada, f"/kick {den} bob")
        await expect(ada, f"* done: bob was kicked in {den}")
        await expect(bob, f"! you were kicked from {den} by ada")
        await type_line(ada, "after the kick")
        await type_line(bob, f"/join {den}")
        await expect(bob, f"! no room {den}")
        assert "after the kick" not in output_of(bob)
