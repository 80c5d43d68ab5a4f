"""``/msg USER TEXT`` on the client's side: ask for the pair's room, join it, then say. No I/O.

The server answers ``dm`` with the pair's direct room, which a ``say`` may only
reach once it is joined, and a join of a room with a door is answered after a
store read: so the text waits here until that room's ``joined`` has come, then it
is said like any line (with a ``ref``, in the pending says). ``ChatState``
inherits this; it is apart so the state machine stays one screen of rules.
"""

from __future__ import annotations

import itertools
from typing import Any

from rawws.chat.client_frames import dm_frame, join_frame
from rawws.chatclient.commands import MessageUser

Frame = dict[str, Any]


class DirectMessages:
    """The ``/msg`` texts between a typed line and its ``say``, and the direct rooms joined for them."""

    # ChatState's, read and written here
    rooms: dict[str, Any]
    _awaiting: set[str]
    _refs: itertools.count[int]

    def _direct_init(self) -> None:
        self._asked: dict[str, tuple[str, str]] = {}  # dm ref → (user, text)
        self._waiting: dict[str, list[str]] = {}  # room → texts to say once joined

    def _ask_direct(self, command: MessageUser) -> str:
        ref = f"dm{next(self._refs)}"
        self._asked[ref] = (command.user, command.text)
        return dm_frame(command.user, ref)

    def _direct_answer(
        self, frame: Frame, new_log: Any
    ) -> tuple[list[str], list[str], list[str]]:
        """A ``direct`` frame: (frames to send, lines to show, texts to say in its room now).
        Ours or the other user's, the room is joined (without becoming the current one) so
        what either says there shows up; joined with ``since`` 0, because the other one may
        have said something between opening the room and our join (and a conversation of
        two reads better whole)."""
        room, user, ref = str(frame["room"]), str(frame["user"]), frame.get("ref")
        asked = self._asked.pop(ref, None) if isinstance(ref, str) else None
        send: list[str] = []
        now: list[str] = []
        if asked is not None:
            self._waiting.setdefault(room, []).append(asked[1])
        if room not in self.rooms:
            self.rooms[room] = new_log
            self._awaiting.add(room)
            send.append(join_frame(room, 0))
        elif room not in self._awaiting:
            now = self._said_in(room)
        show = f"direct room with {user}: {room}" + (
            ""
            if asked is not None
            else f" ({user} opened it; /msg {user} TEXT answers)"
        )
        return send, [show], now

    def _said_in(self, room: str) -> list[str]:
        """The texts that waited for ``room`` to be joined: to be said there now."""
        return self._waiting.pop(room, [])

    def _direct_refused(self, ref: object) -> tuple[str, str] | None:
        """The (user, text) of a ``dm`` the server refused (its ``error`` carries the ref)."""
        return self._asked.pop(ref, None) if isinstance(ref, str) else None

    def _direct_dropped(self) -> list[tuple[str, str]]:
        """What ``/msg`` had not said yet when the connection dropped: (user or room, text)."""
        lost = list(self._asked.values())
        lost += [
            (room, text) for room, texts in self._waiting.items() for text in texts
        ]
        self._asked.clear()
        self._waiting.clear()
        return lost
