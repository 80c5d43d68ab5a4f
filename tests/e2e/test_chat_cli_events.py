"""`rawws chat --user` and issue 22's frames: recent history on join, edit, delete, unread, typing.

Frames in, lines and frames out (``ChatState``, no server): the server side of
edits, deletions, read markers and typing is built against the same agreed
wire spec (``edit``/``delete`` with a ref, answered by ``ack``; ``edited`` and
``deleted`` events with their own ids; ``typing {room, user, expires_in}``), so
these tests pin what the terminal makes of each frame.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from rawws.chatclient.commands import (
    BadInput,
    DeleteMessage,
    EditMessage,
    ListRooms,
    parse_input,
)
from rawws.chatclient.events import JOIN_HISTORY_COUNT
from rawws.chatclient.state import ChatState, Formatter


def frame(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields})


def message(
    message_id: int, user: str = "bob", text: str | None = None, **more: Any
) -> dict:
    text = text if text is not None else f"message {message_id}"
    return {"type": "message", "room": "lobby", "id": message_id, "user": user,
            "text": text, "ts": 0, **more}  # fmt: skip


def shown(state: ChatState, *frames: str) -> list[str]:
    return [line for data in frames for line in state.receive(data).show]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def joined_state(last_id: int = 10, clock: Clock | None = None) -> ChatState:
    """Ada in the lobby, its join answered (and its recent history, empty, in)."""
    state = ChatState("lobby", Formatter(localtime=time.gmtime), clock=clock or Clock())
    state.on_connected()
    shown(state, frame("welcome", user="ada", rooms=["lobby"]))
    shown(state, frame("joined", room="lobby", users=["ada"], last_id=last_id))
    shown(state, frame("history", room="lobby", messages=[]))
    return state


# -- recent history on join ------------------------------------------------------------------


def test_a_first_join_shows_recent_history_before_live_messages_each_once():
    state = ChatState("lobby", Formatter(localtime=time.gmtime))
    state.on_connected()
    shown(state, frame("welcome", user="ada", rooms=["lobby"]))
    out = state.receive(
        frame("joined", room="lobby", users=["ada", "bob"], last_id=3, unread=2)
    )
    assert out.show == ["* joined lobby; here: ada, bob; 2 unread"]
    assert out.send == [json.dumps({"type": "history", "room": "lobby",
                                    "limit": JOIN_HISTORY_COUNT}, separators=(",", ":"))]  # fmt: skip
    # live messages that come before the history wait for it
    assert shown(state, json.dumps(message(4))) == []
    assert shown(state, json.dumps(message(5))) == []
    history = [message(2), {"type": "member", "room": "lobby", "id": 3, "user": "ada",
                            "event": "joined"}, message(4)]  # fmt: skip
    assert shown(state, frame("history", room="lobby", messages=history)) == [
        "* recent messages in lobby:",
        "00:00 #2 [lobby] bob: message 2",
        "00:00 #4 [lobby] bob: message 4",  # in the history and live: once
        "00:00 #5 [lobby] bob: message 5",
    ]
    assert shown(state, json.dumps(message(5))) == []
    assert state.rooms["lobby"].since == 5
    # a later /history is shown as asked, in full
    assert shown(state, frame("history", room="lobby", messages=[message(2)]))[0] == (
        "* the last 1 message of lobby:"
    )


def test_a_rejoin_after_a_drop_asks_no_history_its_since_replay_is_enough():
    state = joined_state(last_id=10)
    state.on_disconnected()
    assert state.on_connected().send == ['{"type":"join","room":"lobby","since":10}']
    out = state.receive(frame("joined", room="lobby", users=["ada"], last_id=12))
    assert out.send == [] and out.show == []
    assert shown(state, json.dumps(message(11))) == [
        "00:00 #11 [lobby] bob: message 11"
    ]


def test_a_failed_join_history_lets_the_held_messages_through():
    state = ChatState("lobby", Formatter(localtime=time.gmtime))
    state.on_connected()
    shown(state, frame("joined", room="lobby", users=["ada"], last_id=0))
    assert shown(state, json.dumps(message(1))) == []
    assert shown(
        state, frame("error", code="unavailable", message="history unavailable")
    ) == [
        "00:00 #1 [lobby] bob: message 1",
        "! history unavailable",
    ]
    assert state.answered


# -- edit and delete ---------------------------------------------------------------------------


def test_edit_and_delete_are_parsed_with_the_id_as_shown():
    assert parse_input("/edit 12 better words") == EditMessage(12, "better words")
    assert parse_input("/edit #12 better") == EditMessage(12, "better")
    assert parse_input("/delete #7") == DeleteMessage(7)
    assert parse_input("/DELETE 7") == DeleteMessage(7)


@pytest.mark.parametrize(
    "line", ["/edit", "/edit 12", "/edit x hi", "/edit 0 hi", "/edit -1 hi", "/edit ١٢ hi",
             "/delete", "/delete 7 8", "/delete #", "/edit 3 " + "x" * 4001],
)  # fmt: skip
def test_bad_edits_and_deletes_say_what_is_wrong(line: str):
    command = parse_input(line)
    assert isinstance(command, BadInput) and command.message


def test_edit_and_delete_send_frames_with_refs_and_refusals_name_them():
    state = joined_state()
    edit = state.command(EditMessage(7, "fixed"))
    assert [json.loads(f) for f in edit.send] == [
        {"type": "edit", "room": "lobby", "id": 7, "text": "fixed", "ref": "e1"}
    ]
    delete = state.command(DeleteMessage(8))
    assert [json.loads(f) for f in delete.send] == [
        {"type": "delete", "room": "lobby", "id": 8, "ref": "e2"}
    ]
    assert shown(state, frame("ack", ref="e1", room="lobby", id=11)) == []
    refused = frame("error", code="forbidden", message="not your message", ref="e2")
    assert shown(state, refused) == ["! /delete #8 in lobby not done: not your message"]
    assert state.pending == {} and state.says.refused == 0  # not a line that was lost


def test_edited_and_deleted_events_render_once_and_count_in_the_room_sequence():
    state = joined_state(last_id=10)
    edited = frame(
        "edited", room="lobby", id=11, message=7, text="fixed", user="bob", ts=0
    )
    deleted = frame("deleted", room="lobby", id=12, message=9, user="ann", ts=0)
    assert shown(state, edited, deleted, edited) == [
        "* 00:00 [lobby] message #7 edited by bob: fixed",
        "* 00:00 [lobby] message #9 deleted by ann",
    ]
    assert state.rooms["lobby"].since == 12  # a re-join asks from past both events


def test_messages_in_their_current_state_show_edited_and_tombstones():
    formatter = Formatter(localtime=time.gmtime)
    assert (
        formatter.message(message(3, edited_at=5))
        == "00:00 #3 [lobby] bob: message 3 (edited)"
    )
    tombstone = message(4, text="", deleted=True, deleted_by="ann", deleted_at=9)
    assert formatter.message(tombstone) == "00:00 #4 [lobby] bob: (deleted by ann)"
    assert (
        formatter.message({**tombstone, "deleted_by": None})
        == "00:00 #4 [lobby] bob: (deleted)"
    )


# -- unread, typing, read ------------------------------------------------------------------------


def test_rooms_show_unread_counts_when_there_are_some():
    state = joined_state()
    assert state.command(ListRooms()).send == ['{"type":"rooms","ref":null}']
    rooms = frame("rooms", rooms=[
        {"room": "lobby", "kind": "public", "role": "member", "last_read": 3, "unread": 4},
        {"room": "dev", "kind": "public", "unread": 0},
        {"room": "ops", "kind": "public"},
    ])  # fmt: skip
    assert shown(state, rooms) == [
        "* rooms you may join: lobby (public, member, joined, 4 unread), dev (public), ops (public)"
    ]


def test_typing_is_said_once_per_burst_and_again_after_a_message_or_when_expired():
    clock = Clock()
    state = joined_state(clock=clock)
    typing = frame("typing", room="lobby", user="bob", expires_in=5)
    assert shown(state, typing) == ["* bob is typing… (lobby)"]
    clock.now += 1
    assert shown(state, typing) == []  # the refresh of the same burst
    assert shown(state, json.dumps(message(11))) == [
        "00:00 #11 [lobby] bob: message 11"
    ]
    assert shown(state, typing) == ["* bob is typing… (lobby)"]  # a new burst
    clock.now += 6
    assert shown(state, typing) == ["* bob is typing… (lobby)"]  # the last one expired
    assert (
        shown(state, frame("typing", room="elsewhere", user="bob", expires_in=5)) == []
    )


def test_read_markers_and_unknown_frames_are_taken_quietly():
    state = joined_state()
    assert shown(state, frame("read", room="lobby", last_read=10)) == []
    assert shown(state, frame("from_the_future", room="lobby", x=1)) == []
    assert shown(state, frame("typing", room="lobby")) == [
        "! malformed typing frame from the server; ignored"
    ]
    assert shown(state, frame("edited", room="lobby", id="x", message=1)) == []


def test_help_lists_edit_and_delete_and_how_ids_show():
    state = joined_state()
    help_text = "\n".join(state.command(parse_input("/help")).show)  # type: ignore[arg-type]
    assert (
        "/edit ID TEXT" in help_text
        and "/delete ID" in help_text
        and "#ID" in help_text
    )
