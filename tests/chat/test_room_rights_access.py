"""``rawws.chat.access`` with a connection's feeds and an outside token's room rights: every
decision against a model, for arbitrary patterns and room names. No I/O."""

from __future__ import annotations

import fnmatch

from hypothesis import given
from hypothesis import strategies as st

from rawws.accounts.room_rights import MAX_PATTERN_CHARS, RoomRights
from rawws.chat import wire, wire_reads
from rawws.chat import wire_edits as edits
from rawws.chat.access import authorize
from rawws.chat.member import ChatMember
from rawws.errors import ChatError
from tests.chat.test_service import FakePeer

LABEL = "abcdefghijklmnopqrstuvwxyz0123456789_-"
public_rooms = st.from_regex(wire.PUBLIC_ROOM_NAME, fullmatch=True)
private_rooms = st.from_regex(wire.PRIVATE_ROOM_NAME, fullmatch=True)
rooms = st.one_of(
    public_rooms, private_rooms, st.sampled_from(["lobby", "team.abcdefgh"])
)
patterns = st.one_of(
    rooms,
    st.text(LABEL + ".", max_size=MAX_PATTERN_CHARS - 1).map(lambda p: p + "*"),
    st.sampled_from(["lob*", "team.*", "*"]),
)
rights = st.none() | st.builds(
    RoomRights,
    st.lists(patterns, max_size=6).map(tuple),
    st.lists(patterns, max_size=6).map(tuple),
)


def matches(listed: tuple[str, ...], room: str) -> bool:
    """The model: a glob whose only special character is a trailing '*'."""
    return any(fnmatch.fnmatchcase(room, pattern) for pattern in listed)


def member_with(granted: RoomRights | None, feeds: set[str]) -> ChatMember:
    member = ChatMember(FakePeer("ext:grace"), "ext:grace")  # type: ignore[arg-type]
    member.rights = granted
    member.feeds = set(feeds)
    return member


def answer(command: wire.Command, joined: bool, member: ChatMember) -> str | None:
    try:
        authorize(command, lambda room: joined, member)
    except ChatError as error:
        return error.code
    return None


@given(rights, rooms, st.booleans())
def test_join_outside_the_rights_is_a_room_never_made(
    granted: RoomRights | None, room: str, feed: bool
) -> None:
    member = member_with(granted, {room} if feed else set())
    expected = None
    if granted is not None and not matches(granted.join, room):
        expected = (
            wire.NO_SUCH_ROOM
        )  # what a missing private room answers: nothing leaks
    assert answer(wire.Join(room, ref="j"), False, member) == expected


@given(rights, rooms, st.booleans(), st.booleans())
def test_publishing_needs_the_rights_and_no_feed(
    granted: RoomRights | None, room: str, feed: bool, joined: bool
) -> None:
    member = member_with(granted, {room} if feed else set())
    publishes = granted is None or matches(granted.publish, room)
    for command, limited_by_rights in (
        (wire.Say(room, "hi", "s"), True),
        (edits.Edit(room, 1, "new", "e"), True),
        (wire_reads.Typing(room), True),
        (edits.Delete(room, 1, "d"), False),  # taking words back is no publishing
    ):
        expected = None
        if not joined:
            expected = wire.NOT_JOINED
        elif feed or (limited_by_rights and not publishes):
            expected = wire.FORBIDDEN
        assert answer(command, joined, member) == expected, command
    # reading is never limited by either, once joined
    for command in (
        wire.HistoryRequest(room),
        wire.Who(room),
        wire_reads.Read(room, 1, "r"),
        wire.Leave(room),
    ):
        assert answer(command, joined, member) == (None if joined else wire.NOT_JOINED)


@given(rooms, st.booleans())
def test_without_rights_or_feeds_nothing_changes(room: str, joined: bool) -> None:
    """The connections of local users: the same answers as with no member at all."""
    member = member_with(None, set())
    for command in (wire.Join(room), wire.Say(room, "hi"), edits.Edit(room, 1, "x")):
        try:
            authorize(command, lambda _room: joined)
            alone = None
        except ChatError as error:
            alone = error.code
        assert answer(command, joined, member) == alone
