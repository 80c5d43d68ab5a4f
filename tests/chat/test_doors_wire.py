"""The door commands on the wire (``create``, ``invite``, ``rooms``) and private room names."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawws.chat import wire as chat
from rawws.chat.access import authorize_stored, needs_membership
from rawws.chat.doors import private_name
from rawws.errors import ChatError
from rawws.store.base import Membership


def parse(**frame: object) -> chat.Command:
    return chat.parse_command(json.dumps(frame))


def test_the_door_commands_are_parsed() -> None:
    assert parse(type="create", room="den", kind="private", ref="r") == chat.Create(
        "den", "private", "r"
    )
    assert parse(type="create", room="plaza", kind="public") == chat.Create(
        "plaza", "public"
    )
    assert parse(type="invite", room="den.abcdefgh", user="Bob", ref="x") == (
        chat.Invite("den.abcdefgh", "Bob", "x")
    )
    assert parse(type="rooms") == chat.RoomsRequest()
    assert parse(type="rooms", ref="q") == chat.RoomsRequest("q")


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"type": "create", "room": "den"}, chat.BAD_FIELD),
        ({"type": "create", "room": "den", "kind": "direct"}, chat.BAD_FIELD),
        ({"type": "create", "room": "den.abcdefgh", "kind": "public"}, chat.BAD_ROOM),
        ({"type": "create", "room": "a" * 24, "kind": "private"}, chat.BAD_ROOM),
        ({"type": "create", "room": "A", "kind": "public"}, chat.BAD_ROOM),
        ({"type": "invite", "room": "den.abcdefgh"}, chat.BAD_FIELD),
        ({"type": "invite", "room": "den.abcdefgh", "user": ""}, chat.BAD_FIELD),
        ({"type": "invite", "room": "den.abcdefgh", "user": "x" * 33}, chat.BAD_FIELD),
        ({"type": "invite", "room": "den.abcdefgh", "user": "a\nb"}, chat.BAD_FIELD),
        ({"type": "invite", "room": "den.abc", "user": "bob"}, chat.BAD_ROOM),
        ({"type": "invite", "user": "bob", "ref": "r9"}, chat.BAD_ROOM),
    ],
)
def test_bad_door_frames_get_their_error(frame: dict, code: str) -> None:
    with pytest.raises(ChatError) as refused:
        chat.parse_command(json.dumps(frame))
    assert refused.value.code == code
    assert refused.value.ref == frame.get("ref")


def test_a_public_room_may_be_made_with_any_public_name() -> None:
    assert parse(type="create", room="a" * 32, kind="public") == chat.Create(
        "a" * 32, "public"
    )


@given(st.from_regex(chat.PUBLIC_ROOM_NAME, fullmatch=True))
def test_public_and_private_names_never_meet(label: str) -> None:
    """No public name is a private one: joining a public name can never reach a private room."""
    assert not chat.is_private(label)
    assert chat.PRIVATE_ROOM_NAME.fullmatch(label) is None
    if len(label) <= chat.MAX_PRIVATE_LABEL_CHARS:
        name = private_name(label)
        assert chat.is_private(name) and chat.ROOM_NAME.fullmatch(name)
        assert chat.PRIVATE_ROOM_NAME.fullmatch(name) is not None


def test_private_names_are_drawn_fresh() -> None:
    assert len({private_name("den") for _ in range(200)}) == 200


def test_the_stored_rules() -> None:
    join, invite = chat.Join("den.abcdefgh"), chat.Invite("den.abcdefgh", "bob", "r")
    assert needs_membership(join) and needs_membership(invite)
    assert not needs_membership(chat.Join("lobby"))
    assert not needs_membership(chat.Say("den.abcdefgh", "x"))  # joined: local check
    for command in (join, invite):
        with pytest.raises(ChatError) as refused:
            authorize_stored(command, None)
        assert refused.value.code == chat.NO_SUCH_ROOM
    member = Membership("den.abcdefgh", "private", "member", 3)
    assert authorize_stored(join, member) == member
    with pytest.raises(ChatError) as refused:
        authorize_stored(invite, member)
    assert (refused.value.code, refused.value.ref) == (chat.FORBIDDEN, "r")
    for role in ("owner", "moderator"):
        manager = Membership("den.abcdefgh", "private", role, 0)
        assert authorize_stored(invite, manager) == manager
