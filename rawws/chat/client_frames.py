"""What a client sends, built in one place so both sides read one definition of each frame.

The server parses these in ``rawws.chat.wire`` (``parse_command``); the terminal
client, ``rawws send`` and the tests build them here.
"""

from __future__ import annotations

from rawws.chat.wire import dumps


def join_frame(room: str, since: int | None = None) -> str:
    return dumps(
        {"type": "join", "room": room}
        if since is None
        else {"type": "join", "room": room, "since": since}
    )


def leave_frame(room: str, for_good: bool = False) -> str:
    """``leave``; ``for_good`` ends the user's membership of the room (the field only when true)."""
    return dumps(
        {"type": "leave", "room": room, "for_good": True}
        if for_good
        else {"type": "leave", "room": room}
    )


def say_frame(room: str, text: str, ref: str) -> str:
    return dumps({"type": "say", "room": room, "text": text, "ref": ref})


def who_frame(room: str) -> str:
    return dumps({"type": "who", "room": room})


def history_frame(room: str, limit: int) -> str:
    return dumps({"type": "history", "room": room, "limit": limit})


def create_frame(room: str, kind: str, ref: str | None = None) -> str:
    return dumps({"type": "create", "room": room, "kind": kind, "ref": ref})


def invite_frame(room: str, user: str, ref: str | None = None) -> str:
    return dumps({"type": "invite", "room": room, "user": user, "ref": ref})


def rooms_frame(ref: str | None = None) -> str:
    return dumps({"type": "rooms", "ref": ref})


def dm_frame(user: str, ref: str | None = None) -> str:
    return dumps({"type": "dm", "user": user, "ref": ref})
