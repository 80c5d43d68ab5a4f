"""``edit`` and ``delete`` on the wire and on the bus, with no I/O: parsing, refusals, the frames
(``edited``, ``deleted``, a message's state) and the bus encoding of their events."""

from __future__ import annotations

import json

import pytest

from rawws.chat import wire as chat
from rawws.chat.codec import Posted, decode_event, encode_event
from rawws.chat.wire import MAX_ID, MAX_TEXT_CHARS, StoredMessage, parse_command
from rawws.chat.wire_edits import Delete, Edit
from rawws.errors import ChatError


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (
            {"type": "edit", "room": "lobby", "id": 7, "text": "new", "ref": "e"},
            Edit("lobby", 7, "new", "e"),
        ),
        (
            {"type": "edit", "room": "lobby", "id": MAX_ID, "text": "x"},
            Edit("lobby", MAX_ID, "x"),
        ),
        (
            {"type": "delete", "room": "lobby", "id": 1, "ref": "d"},
            Delete("lobby", 1, "d"),
        ),
        (
            {"type": "delete", "room": "lobby", "id": 3, "text": "ignored"},
            Delete("lobby", 3),
        ),
    ],
)
def test_edit_and_delete_are_parsed(frame: dict[str, object], expected: object) -> None:
    assert parse_command(json.dumps(frame)) == expected


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"type": "edit", "room": "lobby", "text": "x"}, chat.BAD_FIELD),
        ({"type": "edit", "room": "lobby", "id": 0, "text": "x"}, chat.BAD_FIELD),
        ({"type": "edit", "room": "lobby", "id": "3", "text": "x"}, chat.BAD_FIELD),
        ({"type": "edit", "room": "lobby", "id": 2.0, "text": "x"}, chat.BAD_FIELD),
        ({"type": "edit", "room": "lobby", "id": True, "text": "x"}, chat.BAD_FIELD),
        (
            {"type": "edit", "room": "lobby", "id": MAX_ID + 1, "text": "x"},
            chat.BAD_FIELD,
        ),
        ({"type": "edit", "room": "lobby", "id": 3}, chat.BAD_FIELD),
        ({"type": "edit", "room": "lobby", "id": 3, "text": " "}, chat.BAD_FIELD),
        (
            {
                "type": "edit",
                "room": "lobby",
                "id": 3,
                "text": "x" * (MAX_TEXT_CHARS + 1),
            },
            chat.TOO_LONG,
        ),
        ({"type": "edit", "room": "Lobby", "id": 3, "text": "x"}, chat.BAD_ROOM),
        ({"type": "delete", "room": "lobby"}, chat.BAD_FIELD),
        ({"type": "delete", "room": "lobby", "id": -1}, chat.BAD_FIELD),
        ({"type": "delete", "id": 1}, chat.BAD_ROOM),
    ],
)
def test_bad_edits_and_deletions_are_refused_with_their_ref(
    frame: dict[str, object], code: str
) -> None:
    with pytest.raises(ChatError) as refused:
        parse_command(json.dumps({**frame, "ref": "r"}))
    assert (refused.value.code, refused.value.ref) == (code, "r")


EDIT = StoredMessage("lobby", 9, "ann", "new text", 5.0, "edited", None, 4)
DELETION = StoredMessage("lobby", 10, "mo", "", 6.0, "deleted", None, 4)


def test_the_edited_and_deleted_frames() -> None:
    assert json.loads(chat.message(EDIT)) == {
        "type": "edited",
        "room": "lobby",
        "id": 9,
        "message": 4,
        "text": "new text",
        "user": "ann",
        "ts": 5.0,
    }
    assert json.loads(chat.message(DELETION)) == {
        "type": "deleted",
        "room": "lobby",
        "id": 10,
        "message": 4,
        "user": "mo",
        "ts": 6.0,
    }


def test_a_message_frame_tells_an_edit_and_a_deletion() -> None:
    plain = StoredMessage("lobby", 4, "ann", "hi", 1.0)
    edited = StoredMessage("lobby", 4, "ann", "hey", 1.0, edited_at=5.0)
    deleted = StoredMessage(
        "lobby", 4, "ann", "", 1.0, edited_at=5.0, deleted_by="mo", deleted_at=6.0
    )
    base = {"type": "message", "room": "lobby", "id": 4, "user": "ann", "ts": 1.0}
    assert json.loads(chat.message(plain)) == {**base, "text": "hi"}
    assert json.loads(chat.message(edited)) == {**base, "text": "hey", "edited_at": 5.0}
    assert json.loads(chat.message(deleted)) == {
        **base,
        "text": "",
        "edited_at": 5.0,
        "deleted": True,
        "deleted_by": "mo",
        "deleted_at": 6.0,
    }


@pytest.mark.parametrize("event", [EDIT, DELETION])
def test_edit_and_deletion_events_cross_the_bus_whole(event: StoredMessage) -> None:
    assert decode_event(encode_event(Posted("a", event))) == Posted("a", event)


@pytest.mark.parametrize(
    "change",
    [{"a": None}, {"a": 0}, {"a": "4"}, {"a": 2**63}, {"e": "renamed"}],
)
def test_a_change_event_without_its_message_is_not_ours(
    change: dict[str, object],
) -> None:
    """An edit or deletion must name the message it changes (a positive id); an unknown kind is refused."""
    body = json.loads(encode_event(Posted("a", EDIT)))
    body.update(change)
    if body["a"] is None:
        del body["a"]
    assert decode_event(json.dumps(body)) is None
