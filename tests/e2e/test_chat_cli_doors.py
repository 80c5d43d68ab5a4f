"""The terminal chat's doors: ``/create``, ``/invite``, ``/rooms`` as typed lines, frames and lines
shown (no I/O), then two terminals and a private room through a real server."""

from __future__ import annotations

import json

import pytest

from rawws.chatclient.commands import (
    BadInput,
    CreateRoom,
    InviteUser,
    ListRooms,
    parse_input,
)
from rawws.chatclient.state import ChatState
from tests.e2e.test_chat_cli import (
    expect,
    frame,
    make_private_room,
    shown,
    two_terminals,
    type_line,
)


def test_door_lines_are_parsed() -> None:
    assert parse_input("/create den private") == CreateRoom("den", "private")
    assert parse_input("/create plaza") == CreateRoom("plaza", "public")
    assert parse_input("/invite den.abcdefgh Bob") == InviteUser("den.abcdefgh", "Bob")


@pytest.mark.parametrize(
    "line",
    [
        "/create",
        "/create den secret",
        "/create Den",
        "/create den.abcdefgh",
        "/create " + "a" * 24 + " private",
        "/invite den.abcdefgh",
        "/invite lobby bob",
        "/invite den.abcdefgh bob cy",
    ],
)
def test_bad_door_lines_say_what_is_wrong(line: str) -> None:
    assert isinstance(parse_input(line), BadInput)


def test_door_commands_send_their_frames_and_show_their_answers() -> None:
    state = ChatState("lobby")
    state.on_connected()
    assert [
        json.loads(f) for f in state.command(CreateRoom("den", "private")).send
    ] == [{"type": "create", "room": "den", "kind": "private", "ref": None}]
    assert [
        json.loads(f) for f in state.command(InviteUser("den.abcdefgh", "bob")).send
    ] == [{"type": "invite", "room": "den.abcdefgh", "user": "bob", "ref": None}]
    rooms = state.command(ListRooms())
    assert rooms.show == ["* rooms: lobby (current)"]
    assert [json.loads(f) for f in rooms.send] == [{"type": "rooms", "ref": None}]
    created = json.dumps(
        {"type": "created", "room": "den.abcdefgh", "kind": "private", "role": "owner"}
    )
    assert shown(state, created) == [
        "* made private room den.abcdefgh, yours; /join den.abcdefgh to talk there"
    ]
    assert shown(
        state, frame("invited", room="den.abcdefgh", user="bob", ref=None)
    ) == ["* bob may join den.abcdefgh now"]
    assert shown(state, frame("invitation", room="den.abcdefgh", by="ann")) == [
        "* ann invited you to den.abcdefgh; /join den.abcdefgh"
    ]
    listed = frame(
        "rooms",
        rooms=[
            {"room": "den.abcdefgh", "kind": "private", "role": "owner"},
            {"room": "lobby", "kind": "public", "role": None},
        ],
        ref=None,
    )
    assert shown(state, listed) == [
        "* rooms you may join: den.abcdefgh (private, owner), lobby (public, joined)"
    ]


def test_a_join_of_no_such_room_is_undone() -> None:
    state = ChatState("lobby")
    state.on_connected()
    state.command(parse_input("/join den.abcdefgh"))  # type: ignore[arg-type]
    lines = shown(
        state, frame("error", code="no_such_room", message="no room den.abcdefgh")
    )
    assert lines == ["! no room den.abcdefgh", "* talking in lobby"]
    assert list(state.rooms) == ["lobby"]


async def test_two_terminals_make_and_share_a_private_room(start_server) -> None:
    async with two_terminals(start_server) as (ada, bob):
        den = await make_private_room(ada)
        await type_line(bob, f"/join {den}")
        await expect(bob, f"! no room {den}")
        await type_line(ada, f"/invite {den} bob")
        await expect(ada, f"* bob may join {den} now")
        await expect(bob, f"* ada invited you to {den}; /join {den}")
        await type_line(bob, "/rooms")
        await expect(bob, f"{den} (private, member)")
        await type_line(bob, f"/join {den}")
        await expect(bob, f"* joined {den}")
        await type_line(ada, f"/join {den}")
        await type_line(ada, "just us")
        await expect(bob, f"[{den}] ada: just us")
