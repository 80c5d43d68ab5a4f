"""Read markers from the terminal: what ``rawws chat`` printed, its user has seen.

Every ``READ_EVERY_S`` the session asks for the rooms whose printed entries went past
the marker it last sent, and sends one ``read`` per such room (through the paced outbox,
like every frame). So the unread counts a user's other clients show (the page's badges,
``/rooms`` elsewhere) stop counting what the terminal already showed. No I/O.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rawws.chatclient.state import ChatState

READ_EVERY_S = 2.0


class ReadMarks:
    def __init__(self) -> None:
        self.sent: dict[str, int] = {}  # room → the marker last sent

    def due(self, state: ChatState) -> list[str]:
        """A ``read`` for each room shown past its marker; none until every room is re-joined
        (a room still being joined would answer ``not_joined``)."""
        if not state.recovered:
            return []
        frames = []
        for room, log in state.rooms.items():
            upto = log.since
            if upto and upto > self.sent.get(room, 0):
                self.sent[room] = upto
                frames.append(
                    json.dumps(
                        {"type": "read", "room": room, "id": upto},
                        separators=(",", ":"),
                    )
                )
        return frames
