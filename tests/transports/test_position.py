"""The position (``room:id,…``): what ``Last-Event-ID`` carries, read strictly and bounded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawws.chat.room_names import ROOM_NAME
from rawws.transports.position import (
    MAX_ID,
    BadPosition,
    format_position,
    parse_position,
)

rooms = st.from_regex(ROOM_NAME, fullmatch=True)
positions = st.dictionaries(rooms, st.integers(0, MAX_ID), max_size=32)


@given(positions)
def test_a_formatted_position_reads_back_the_same_rooms_ids_and_order(
    position: dict[str, int],
) -> None:
    text = format_position(position)
    assert list(parse_position(text, 32).items()) == list(position.items())


@given(st.text(max_size=300))
def test_any_text_is_a_position_or_bad_position_never_another_error(text: str) -> None:
    try:
        position = parse_position(text, 32)
    except BadPosition as bad:
        assert str(bad)
        return
    assert len(position) <= 32
    assert all(ROOM_NAME.fullmatch(room) for room in position)
    assert all(0 <= last_id <= MAX_ID for last_id in position.values())


@pytest.mark.parametrize(
    "text",
    [
        "lobby",  # no id
        "lobby:",  # an empty id
        "lobby:-1",
        "lobby:1.5",
        "lobby:١٢",  # digits, but not ASCII ones
        "Lobby:1",  # not a room name
        "lobby:1,lobby:2",  # a room twice
        f"lobby:{MAX_ID + 1}",
        "lobby:1,,dev:2",
        "a:1,b:2,c:3",  # over the limit of 2 below
        "x" * 10_000,  # refused before it is split
    ],
)
def test_what_is_not_a_position_is_refused(text: str) -> None:
    with pytest.raises(BadPosition):
        parse_position(text, 2)


def test_the_empty_position_is_no_room() -> None:
    assert parse_position("", 32) == {}
    assert parse_position("  ", 32) == {}
    assert format_position({}) == ""
