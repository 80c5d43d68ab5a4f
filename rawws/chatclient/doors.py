"""The rooms' doors on the client's side: ``/create``, ``/invite``, ``/rooms`` and their answers. No I/O.

Kept beside ``rawws.chatclient.state`` (``ChatState`` inherits ``DoorAnswers``) so
the state machine stays one screen of rules about joining and talking.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from rawws.chat.client_frames import create_frame, invite_frame, rooms_frame
from rawws.chat.wire_moderation import moderation_frame
from rawws.chatclient.commands import CreateRoom, InviteUser, Moderate

Frame = dict[str, Any]


class _Lines(Protocol):
    def info(self, text: str) -> str: ...

    def message(self, frame: Frame) -> str: ...


def door_frame(command: CreateRoom | InviteUser | Moderate | None) -> str:
    """The frame a door command sends (None: ``/rooms``)."""
    if isinstance(command, Moderate):
        more: dict[str, object] = {}
        if command.seconds is not None:
            more["seconds"] = command.seconds
        if command.role is not None:
            more["role"] = command.role
        return moderation_frame(command.kind, command.room, command.user, None, more)
    if isinstance(command, CreateRoom):
        return create_frame(command.name, command.kind)
    if isinstance(command, InviteUser):
        return invite_frame(command.room, command.user)
    return rooms_frame()


def door_answer(frame: Frame, formatter: _Lines, joined: set[str]) -> list[str] | None:
    """The lines an answer to a door command shows; None for a frame that is not one."""
    kind = frame["type"]
    if kind == "created":
        room = str(frame["room"])
        return [
            formatter.info(
                f"made {frame['kind']} room {room}, yours; /join {room} to talk there"
            )
        ]
    if kind == "invited":
        return [formatter.info(f"{frame['user']} may join {frame['room']} now")]
    if kind == "invitation":
        room = str(frame["room"])
        return [formatter.info(f"{frame['by']} invited you to {room}; /join {room}")]
    if kind == "moderated":
        return [formatter.info(f"done: {member_line(frame)}")]
    if kind == "rooms":
        listed = []
        for entry in frame["rooms"]:
            role = f", {entry['role']}" if entry.get("role") else ""
            if entry.get("user"):  # a direct room: whose
                role = f" with {entry['user']}{role}"
            here = ", joined" if entry["room"] in joined else ""
            unread = entry.get("unread")
            if isinstance(unread, int) and not isinstance(unread, bool) and unread > 0:
                here += f", {unread} unread"
            listed.append(f"{entry['room']} ({entry['kind']}{role}{here})")
        return [
            formatter.info("rooms you may join: " + (", ".join(listed) or "none yet"))
        ]
    return None


_EVENT_WORDS = {
    "invited": "was invited",
    "kicked": "was kicked",
    "banned": "was banned",
    "unbanned": "was unbanned",
    "unmuted": "was unmuted",
}


# A member's own doings: the first join of a public room, and a part (``leave`` for good).
_OWN_WORDS = {
    "joined": "joined {room} as a new member",
    "left": "left {room} for good",
}


def member_line(frame: Frame) -> str:
    """A membership event (``member``, ``removed``, ``moderated``) in words: "bob was kicked by ann"."""
    room, event = frame["room"], str(frame.get("event") or frame.get("reason"))
    user, by = frame.get("user"), frame.get("by")
    who = "you were" if frame["type"] == "removed" else f"{user}"
    if (
        event == "left" and frame["type"] == "removed"
    ):  # a part on another connection of ours
        return f"you left {room} for good"
    if frame["type"] == "removed" and event == "deleted":  # the room itself, by an app
        return f"{room} was deleted by {by}"
    if frame["type"] == "removed":
        return f"{who} {event} from {room} by {by}"
    if event in _OWN_WORDS and frame["type"] == "member":  # done by the user themselves
        return f"{who} {_OWN_WORDS[event].format(room=room)}"
    if event == "muted":
        words = "was muted" + (
            f" for {max(0, round(frame['until'] - time.time()))} s"
            if "until" in frame
            else ""
        )
    elif event == "role":
        words = f"is now {frame['role']}" if "role" in frame else "has a new role"
    else:
        words = _EVENT_WORDS.get(event, event)
    return f"{who} {words} in {room}" + (f" by {by}" if by else "")


def history_lines(formatter: _Lines, entries: list[Frame]) -> list[str]:
    """A ``history`` page: its messages, and its membership events in words."""
    return [
        formatter.info(member_line(entry))
        if entry.get("type") == "member"
        else formatter.message(entry)
        for entry in entries
    ]
