"""The rooms' doors on the client's side: ``/create``, ``/invite``, ``/rooms`` and their answers. No I/O.

Kept beside ``rawws.chatclient.state`` (``ChatState`` inherits ``DoorAnswers``) so
the state machine stays one screen of rules about joining and talking.
"""

from __future__ import annotations

from typing import Any, Protocol

from rawws.chat.wire import create_frame, invite_frame, rooms_frame
from rawws.chatclient.commands import CreateRoom, InviteUser

Frame = dict[str, Any]


class _Lines(Protocol):
    def info(self, text: str) -> str: ...


def door_frame(command: CreateRoom | InviteUser | None) -> str:
    """The frame a door command sends (None: ``/rooms``)."""
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
    if kind == "rooms":
        listed = []
        for entry in frame["rooms"]:
            role = f", {entry['role']}" if entry.get("role") else ""
            if entry.get("user"):  # a direct room: whose
                role = f" with {entry['user']}{role}"
            here = ", joined" if entry["room"] in joined else ""
            listed.append(f"{entry['room']} ({entry['kind']}{role}{here})")
        return [
            formatter.info("rooms you may join: " + (", ".join(listed) or "none yet"))
        ]
    return None
