"""The terminal's words for a room taken away: a kick names the user, a deletion names the room."""

from rawws.chatclient.doors import member_line


def test_a_deleted_room_is_said_to_be_deleted_not_the_user() -> None:
    frame = {"type": "removed", "room": "ticker", "reason": "deleted", "by": "feeds"}
    assert member_line(frame) == "ticker was deleted by feeds"


def test_a_kick_still_names_who_was_kicked() -> None:
    frame = {"type": "removed", "room": "lobby", "reason": "kicked", "by": "ann"}
    assert member_line(frame) == "you were kicked from lobby by ann"
