"""``dm`` on the wire, direct room names, and why they never meet public or private ones."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawws.chat import wire as chat
from rawws.chat.access import authorize, needs_membership
from rawws.chat.client_frames import dm_frame
from rawws.chat.doors import direct_name, private_name
from rawws.errors import ChatError
from rawws.store.base import RoomView

users = st.from_regex(r"[A-Za-z0-9_]{1,32}", fullmatch=True)


def test_dm_is_parsed() -> None:
    assert chat.parse_command('{"type":"dm","user":"Bob","ref":"d"}') == chat.Dm(
        "Bob", "d"
    )
    assert chat.parse_command('{"type":"dm","user":"bob"}') == chat.Dm("bob")
    assert json.loads(dm_frame("bob", "d")) == {
        "type": "dm",
        "user": "bob",
        "ref": "d",
    }


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"type": "dm"}, chat.BAD_FIELD),
        ({"type": "dm", "user": "", "ref": "a"}, chat.BAD_FIELD),
        ({"type": "dm", "user": "x" * 33}, chat.BAD_FIELD),
        ({"type": "dm", "user": 7, "ref": "b"}, chat.BAD_FIELD),
        ({"type": "create", "room": "~" + "a" * 24, "kind": "public"}, chat.BAD_ROOM),
        ({"type": "create", "room": "~" + "a" * 24, "kind": "private"}, chat.BAD_ROOM),
        ({"type": "join", "room": "~" + "a" * 23}, chat.BAD_ROOM),
        ({"type": "join", "room": "~" + "g" * 24, "ref": "j"}, chat.BAD_ROOM),
    ],
)
def test_bad_dm_frames_and_direct_look_alikes_get_their_error(
    frame: dict, code: str
) -> None:
    with pytest.raises(ChatError) as refused:
        chat.parse_command(json.dumps(frame))
    assert refused.value.code == code
    assert refused.value.ref == frame.get("ref")


def test_create_says_why_a_direct_name_is_refused() -> None:
    with pytest.raises(ChatError) as refused:
        chat.parse_command(
            json.dumps({"type": "create", "room": "~ab", "kind": "public"})
        )
    assert "dm" in refused.value.message


@given(users, users)
def test_a_pair_has_one_name_whichever_asks(a: str, b: str) -> None:
    name = direct_name(a, b)
    assert name == direct_name(b, a) == direct_name(a.upper(), b.lower())
    assert chat.DIRECT_ROOM_NAME.fullmatch(name) and chat.ROOM_NAME.fullmatch(name)
    assert chat.is_direct(name) and chat.has_door(name) and not chat.is_private(name)
    assert len(name) <= chat.MAX_ROOM_CHARS


def test_different_pairs_have_different_names() -> None:
    pairs = [(f"u{i}", f"u{j}") for i in range(30) for j in range(i + 1, 30)]
    assert len({direct_name(a, b) for a, b in pairs}) == len(pairs)


@given(st.from_regex(chat.PUBLIC_ROOM_NAME, fullmatch=True))
def test_direct_names_meet_no_public_or_private_name(label: str) -> None:
    assert not chat.is_direct(label) and chat.DIRECT_ROOM_NAME.fullmatch(label) is None
    if len(label) <= chat.MAX_PRIVATE_LABEL_CHARS:
        private = private_name(label)
        assert not chat.is_direct(private)
        assert chat.DIRECT_ROOM_NAME.fullmatch(private) is None


def test_a_direct_room_takes_no_invitation_and_its_join_reads_membership() -> None:
    room = direct_name("ann", "bob")
    assert needs_membership(chat.Join(room))
    with pytest.raises(ChatError) as refused:
        authorize(chat.Invite(room, "cy", "i"), lambda _room: False)
    assert (refused.value.code, refused.value.ref) == (chat.BAD_ROOM, "i")
    authorize(chat.Dm("bob"), lambda _room: False)  # names no room: anyone may ask


def test_the_direct_frame_and_the_rooms_entry_name_the_other_user() -> None:
    room = direct_name("ann", "bob")
    assert json.loads(chat.direct(room, "bob", "d")) == {
        "type": "direct",
        "room": room,
        "user": "bob",
        "ref": "d",
    }
    assert "ref" not in json.loads(chat.direct(room, "ann"))
    listed = json.loads(chat.rooms([RoomView(room, "direct", "member", "bob")], None))
    assert listed["rooms"] == [
        {"room": room, "kind": "direct", "role": "member", "user": "bob"}
    ]
    members = json.loads(chat.members(room, ["ann"], {"ann": "member"}))
    assert members["roles"] == {"ann": "member"}
    assert "roles" not in json.loads(chat.members("lobby", ["ann"]))


def test_a_notice_crosses_the_bus_whole_and_a_bad_one_is_dropped() -> None:
    """An invitation or a direct room's notice, for one user's connections on every node."""
    from rawws.chat.codec import MAX_NOTICE_CHARS, Notice, decode_event, encode_event

    text = chat.direct(direct_name("ann", "bob"), "ann")
    notice = Notice("node-a", "bob", text)
    assert decode_event(encode_event(notice)) == notice
    body = json.loads(encode_event(notice))
    for field, bad in (
        ("u", ""),
        ("u", 7),
        ("t", None),
        ("t", "x" * (MAX_NOTICE_CHARS + 1)),
    ):
        assert decode_event(json.dumps(body | {field: bad})) is None
