"""The chat wire protocol with no I/O: every command, the malformed-frame corpus, property tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawws.chat import wire as chat
from rawws.chat.wire import (
    MAX_HISTORY_LIMIT,
    MAX_ID,
    MAX_REF_CHARS,
    MAX_TEXT_CHARS,
    HistoryRequest,
    Join,
    Leave,
    Say,
    StoredMessage,
    Who,
    parse_command,
)
from rawws.config import (
    DEFAULT_CHAT_MAX_ROOMS_PER_CONNECTION,
    DEFAULT_CHAT_MESSAGE_BURST,
    DEFAULT_CHAT_MESSAGES_PER_S,
)
from rawws.errors import ChatError
from tests.support.chat_client import BAD_CASES, chat_frame

# -- every command -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (chat_frame(type="join", room="lobby"), Join("lobby", None)),
        (chat_frame(type="join", room="lobby", since=0), Join("lobby", 0)),
        (chat_frame(type="join", room="lobby", since=41), Join("lobby", 41)),
        (chat_frame(type="join", room="lobby", since=MAX_ID), Join("lobby", MAX_ID)),
        (chat_frame(type="join", room="lobby", since=None), Join("lobby", None)),
        (chat_frame(type="leave", room="r-1_x"), Leave("r-1_x")),
        (chat_frame(type="say", room="lobby", text="hi"), Say("lobby", "hi", None)),
        (
            chat_frame(type="say", room="lobby", text="hi", ref="c1"),
            Say("lobby", "hi", "c1"),
        ),
        (
            chat_frame(type="say", room="lobby", text="hi", ref=""),
            Say("lobby", "hi", ""),
        ),
        (
            chat_frame(
                type="say", room="lobby", text=" spaced ", ref="r" * MAX_REF_CHARS
            ),
            Say("lobby", " spaced ", "r" * 64),
        ),
        (
            chat_frame(type="say", room="lobby", text="x" * MAX_TEXT_CHARS),
            Say("lobby", "x" * MAX_TEXT_CHARS),
        ),
        (
            chat_frame(type="say", room="lobby", text="😀" * MAX_TEXT_CHARS),
            Say("lobby", "😀" * MAX_TEXT_CHARS),
        ),
        (
            chat_frame(type="say", room="lobby", text="ünïcödé ☃ 日本"),
            Say("lobby", "ünïcödé ☃ 日本"),
        ),
        (
            chat_frame(type="history", room="lobby"),
            HistoryRequest("lobby", None, chat.DEFAULT_HISTORY_LIMIT),
        ),
        (
            chat_frame(type="history", room="lobby", before=10, limit=5),
            HistoryRequest("lobby", 10, 5),
        ),
        (
            chat_frame(type="history", room="lobby", before=1, limit=1),
            HistoryRequest("lobby", 1, 1),
        ),
        (
            chat_frame(type="history", room="lobby", limit=10_000),
            HistoryRequest("lobby", None, MAX_HISTORY_LIMIT),
        ),
        (chat_frame(type="who", room="lobby"), Who("lobby")),
        # unknown fields are ignored, and so is a "user" (the server stamps it)
        (
            chat_frame(
                type="say", room="lobby", text="hi", user="someone-else", extra=[1]
            ),
            Say("lobby", "hi", None),
        ),
        # the longest room name, digits first
        (chat_frame(type="join", room="0" + "a" * 31), Join("0" + "a" * 31)),
    ],
)
def test_every_command_is_parsed(data: str, expected: chat.Command) -> None:
    assert parse_command(data) == expected


def test_room_names() -> None:
    for good in ("a", "lobby", "0", "a-b_c", "9" * 32):
        assert parse_command(chat_frame(type="join", room=good)).room == good


def test_the_corpus_is_big_enough() -> None:
    assert len(BAD_CASES) >= 15
    assert len({name for name, *_ in BAD_CASES}) == len(BAD_CASES)


@pytest.mark.parametrize(
    ("name", "data", "code", "ref"), BAD_CASES, ids=[case[0] for case in BAD_CASES]
)
def test_malformed_frames_get_their_exact_error(
    name: str, data: str | bytes, code: str, ref: str | None
) -> None:
    with pytest.raises(ChatError) as caught:
        parse_command(data)
    assert caught.value.code == code, caught.value.message
    assert caught.value.ref == ref
    # and the answer is a valid frame
    answer = json.loads(
        chat.error(caught.value.code, caught.value.message, caught.value.ref).encode(
            "utf-8"
        )
    )
    assert answer["type"] == "error" and answer["code"] == code
    assert answer.get("ref") == ref
    assert ("ref" in answer) == (ref is not None)


def test_unknown_type_message_is_bounded() -> None:
    with pytest.raises(ChatError) as caught:
        parse_command(chat_frame(type="x" * 100_000, room="lobby"))
    assert caught.value.code == chat.BAD_TYPE
    assert len(caught.value.message) < 100


# -- properties ----------------------------------------------------------------------

any_char = st.characters(codec=None, exclude_categories=())  # surrogates included
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(any_char, max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(any_char, max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
field_values = (
    st.sampled_from(
        [
            None,
            True,
            False,
            0,
            1,
            -1,
            1.5,
            "",
            " ",
            "lobby",
            "LOBBY",
            "a" * 33,
            MAX_ID,
            MAX_ID + 1,
        ]
    )
    | json_values
)
frame_dicts = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["join", "leave", "say", "history", "who", "nope", ""])
        | json_values,
        "room": field_values,
        "text": field_values | st.text(any_char, max_size=50),
        "ref": field_values | st.text(any_char, max_size=70),
        "since": field_values,
        "before": field_values,
        "limit": field_values,
    },
)


def check_parse(data: str | bytes) -> None:
    """Parsing anything gives a command whose answers are valid frames, or a ChatError; nothing else."""
    try:
        command = parse_command(data)
    except ChatError as error:
        assert error.code in {
            chat.BAD_JSON,
            chat.BAD_TYPE,
            chat.BAD_FIELD,
            chat.BAD_ROOM,
            chat.TOO_LONG,
            chat.BINARY,
        }
        chat.error(error.code, error.message, error.ref).encode(
            "utf-8"
        )  # always sendable
        return
    assert chat.ROOM_NAME.fullmatch(command.room)
    if isinstance(command, Say):
        assert command.text.strip() and len(command.text) <= MAX_TEXT_CHARS
        stored = StoredMessage(command.room, 1, "ada", command.text, 1.0)
        assert json.loads(chat.message(stored).encode("utf-8"))["text"] == command.text
        chat.ack(command.ref, command.room, 1).encode("utf-8")
    if isinstance(command, Join):
        assert command.since is None or 0 <= command.since <= MAX_ID
    if isinstance(command, HistoryRequest):
        assert 1 <= command.limit <= MAX_HISTORY_LIMIT
        assert command.before is None or 1 <= command.before <= MAX_ID


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_any_json_value_parses_or_is_a_chat_error(value: object) -> None:
    check_parse(json.dumps(value))


@settings(max_examples=1000, deadline=None)
@given(frame_dicts)
def test_any_frame_shaped_object_parses_or_is_a_chat_error(value: dict) -> None:
    check_parse(json.dumps(value))


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(["say", "join", "history"]),
    st.text(any_char, min_size=1, max_size=30),
    st.none() | st.text(any_char, max_size=10),
    st.none() | st.integers(-2, 2**64),
)
def test_well_shaped_frames_with_any_text_and_ref(
    kind: str, text: str, ref: str | None, number: int | None
) -> None:
    """Valid type and room, arbitrary strings (lone surrogates too) where the client chooses them."""
    fields: dict[str, object] = {
        "type": kind,
        "room": "lobby",
        "text": text,
        "since": number,
        "before": number,
    }
    if ref is not None:
        fields["ref"] = ref
    check_parse(json.dumps(fields))


@settings(max_examples=500, deadline=None)
@given(st.text(any_char, max_size=200))
def test_any_string_parses_or_is_a_chat_error(data: str) -> None:
    check_parse(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=100))
def test_any_bytes_are_a_binary_error(data: bytes) -> None:
    with pytest.raises(ChatError) as caught:
        parse_command(data)
    assert caught.value.code == chat.BINARY


# -- server frames ---------------------------------------------------------------------

MESSAGE = StoredMessage("lobby", 42, "ada", 'hi "bob" ☃\n', 1795539257.28)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            chat.welcome("ada", ["lobby"], chat.limits(3, 2.5, 4)),
            {
                "type": "welcome",
                "user": "ada",
                "rooms": ["lobby"],
                "limits": {
                    "room_name": "[a-z0-9][a-z0-9_-]{0,31}"
                    r"|[a-z0-9][a-z0-9_-]{0,22}\.[a-z0-9]{8}|~[0-9a-f]{24}",
                    "room_rule": "1-32 characters of a-z, 0-9, '_' and '-', "
                    "starting with a letter or digit (a private room's name ends in "
                    "'.' and 8 letters or digits; a direct room's is '~' and 24 hex digits)",
                    "max_text_chars": 4000,
                    "max_ref_chars": 64,
                    "default_history_limit": 50,
                    "max_history_limit": 200,
                    "max_rooms_per_connection": 3,
                    "messages_per_s": 2.5,
                    "message_burst": 4,
                },
            },
        ),
        (
            chat.joined("lobby", ["ada", "bob"], 41, 39, 1, "public"),
            {
                "type": "joined",
                "room": "lobby",
                "kind": "public",
                "users": ["ada", "bob"],
                "last_id": 41,
                "last_read": 39,
                "unread": 1,
            },
        ),
        (chat.left("lobby"), {"type": "left", "room": "lobby"}),
        (
            chat.message(MESSAGE),
            {
                "type": "message",
                "room": "lobby",
                "id": 42,
                "user": "ada",
                "text": 'hi "bob" ☃\n',
                "ts": 1795539257.28,
            },
        ),
        (
            chat.ack("c1", "lobby", 42),
            {"type": "ack", "ref": "c1", "room": "lobby", "id": 42},
        ),
        (
            chat.ack(None, "lobby", 42),
            {"type": "ack", "ref": None, "room": "lobby", "id": 42},
        ),
        (
            chat.presence("lobby", "cy", "joined"),
            {"type": "presence", "room": "lobby", "user": "cy", "event": "joined"},
        ),
        (
            chat.presence("lobby", "cy", "left"),
            {"type": "presence", "room": "lobby", "user": "cy", "event": "left"},
        ),
        (
            chat.members("lobby", ["ada"]),
            {"type": "members", "room": "lobby", "users": ["ada"]},
        ),
        (
            chat.history("lobby", [MESSAGE]),
            {
                "type": "history",
                "room": "lobby",
                "messages": [{**chat.message_fields(MESSAGE)}],
            },
        ),
        (
            chat.history("lobby", []),
            {"type": "history", "room": "lobby", "messages": []},
        ),
        (
            chat.error("bad_json", "nope"),
            {"type": "error", "code": "bad_json", "message": "nope"},
        ),
        (
            chat.error("bad_room", "nope", "r1"),
            {"type": "error", "code": "bad_room", "message": "nope", "ref": "r1"},
        ),
    ],
)
def test_server_frames_are_json_with_the_documented_fields(
    text: str, expected: dict
) -> None:
    assert json.loads(text.encode("utf-8")) == expected
    assert "\n" not in text  # one compact line: newlines inside strings are escaped


@pytest.mark.parametrize(
    ("room", "valid"),
    [("a", True), ("a" * 32, True), ("a" * 33, False), ("-a", False), ("A", False)],
)
def test_the_room_rule_is_one_pattern_and_its_words(room: str, valid: bool) -> None:
    """The welcome sends the pattern a whole name must match, and the words a refusal says."""
    assert (chat.ROOM_NAME.fullmatch(room) is not None) is valid
    limits = chat.limits(32, 10.0, 20)
    assert (re.fullmatch(str(limits["room_name"]), room) is not None) is valid
    if not valid:
        with pytest.raises(ChatError) as refused:
            parse_command(json.dumps({"type": "join", "room": room}))
        assert refused.value.message == f"room must be {limits['room_rule']}"


def test_history_messages_have_the_message_fields() -> None:
    payload = json.loads(chat.history("lobby", [MESSAGE]))
    assert set(payload["messages"][0]) == {"type", "room", "id", "user", "text", "ts"}


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=200),
    st.text(max_size=40),
    st.integers(1, MAX_ID),
    st.floats(0, 4e9),
)
def test_message_frames_round_trip(
    text: str, user: str, message_id: int, ts: float
) -> None:
    stored = StoredMessage("lobby", message_id, user, text, ts)
    assert json.loads(chat.message(stored)) == {
        "type": "message",
        "room": "lobby",
        "id": message_id,
        "user": user,
        "text": text,
        "ts": ts,
    }


def test_the_protocol_page_shows_the_welcome_as_sent() -> None:
    """docs/protocol.md's example welcome is the frame a server with the defaults sends."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    shown = next(line for line in page.splitlines() if '"type":"welcome"' in line)
    limits = chat.limits(
        DEFAULT_CHAT_MAX_ROOMS_PER_CONNECTION,
        DEFAULT_CHAT_MESSAGES_PER_S,
        DEFAULT_CHAT_MESSAGE_BURST,
    )
    assert shown == "← " + chat.welcome("ada", ["lobby"], limits)
