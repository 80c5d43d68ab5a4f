"""A room's life beyond plain messages, on the client's side: recent history on join, edits,
deletions, typing, read markers. No I/O. ``ChatState`` inherits this; it is apart so the state
machine stays one screen of rules.

* **Recent history on join.** A first join asks for the room's last
  ``JOIN_HISTORY_COUNT`` entries and holds the room's live frames until they
  come, so the history prints first; an entry shown live already is not shown
  again (by id). A re-join after a drop asks for none: its ``since`` replay
  brings exactly what was missed.
* **Edits and deletions** (``/edit ID TEXT``, ``/delete ID``): sent with a ref,
  so a refusal names what was refused; the ``edited`` / ``deleted`` events take
  an id in the room's sequence like a message, so they are shown once and
  ``since`` stays exact.
* **Typing**: "ada is typing…" once per burst: not again while the last one
  has not expired (``expires_in``), and again once ada's message has arrived.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from rawws.chat.client_frames import history_frame
from rawws.chat.wire import dumps
from rawws.chatclient.commands import DeleteMessage, EditMessage
from rawws.chatclient.doors import member_line
from rawws.chatclient.formatter import Formatter, Frame, preview
from rawws.chatclient.output import Output
from rawws.chatclient.says import PendingSay, Says

JOIN_HISTORY_COUNT = 20  # entries of a room's history shown when it is first joined
HELD_TYPES = frozenset({"message", "member", "edited", "deleted"})
TYPING = "is typing…"


def edit_frame(room: str, message_id: int, text: str, ref: str) -> str:
    return dumps(
        {"type": "edit", "room": room, "id": message_id, "text": text, "ref": ref}
    )


def delete_frame(room: str, message_id: int, ref: str) -> str:
    return dumps({"type": "delete", "room": room, "id": message_id, "ref": ref})


class RoomEvents:
    """Join histories being fetched, edits and deletions not answered yet, who is typing."""

    # ChatState's, read and written here
    rooms: dict[str, Any]
    formatter: Formatter
    _refs: itertools.count[int]
    says: Says

    def _events_init(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._recent: dict[
            str, list[Frame]
        ] = {}  # room → live frames held until its history
        self._changes: dict[
            str, str
        ] = {}  # ref of an edit/delete → what it did, in words
        self._typing: dict[tuple[str, str], float] = {}  # (room, user) → shown until

    # -- recent history on join --

    def _ask_recent(self, room: str) -> str:
        self._recent[room] = []
        return history_frame(room, JOIN_HISTORY_COUNT)

    def _holds(self, frame: Frame) -> bool:
        """A live frame of a room whose join history has not come: kept until it has."""
        held = self._recent.get(frame.get("room"))  # type: ignore[arg-type]
        if held is None or frame.get("type") not in HELD_TYPES:
            return False
        held.append(frame)
        return True

    def _recent_answer(self, frame: Frame) -> tuple[list[str], list[Frame]] | None:
        """A ``history`` that answers a join: (lines, the live frames held meanwhile); else ``None``."""
        room = frame["room"]
        held = self._recent.pop(room, None)
        log = self.rooms.get(room)
        if held is None or log is None:
            return None
        floor = log.floor or 0
        lines: list[str] = []
        for entry in frame["messages"]:
            entry_id = entry.get("id") if isinstance(entry, dict) else None
            if not isinstance(entry_id, int):
                continue
            if entry_id > floor and not log.first_sight(entry_id):
                continue  # shown live already
            if entry.get("type", "message") == "message":
                lines.append(self.formatter.message(entry))
            elif entry_id > floor:  # a membership event after our join: news
                lines.append(self.formatter.info(member_line(entry)))
        if lines:
            many = "s" if len(lines) != 1 else ""
            lines.insert(0, self.formatter.info(f"recent message{many} in {room}:"))
        return lines, held

    def _release_held(self, room: str | None = None) -> list[Frame]:
        """Stop waiting for join histories (refused, left): the frames held, to show now."""
        rooms = [room] if room is not None else list(self._recent)
        return [frame for name in rooms for frame in self._recent.pop(name, [])]

    # -- edits and deletions --

    def _change_frame(self, command: EditMessage | DeleteMessage, room: str) -> str:
        ref = f"e{next(self._refs)}"
        if isinstance(command, EditMessage):
            self._changes[ref] = f"/edit #{command.id} in {room}"
            return edit_frame(room, command.id, command.text, ref)
        self._changes[ref] = f"/delete #{command.id} in {room}"
        return delete_frame(room, command.id, ref)

    def _change_answered(self, ref: object) -> str | None:
        """What the edit or delete with ``ref`` was (its ack or error came), else ``None``."""
        return self._changes.pop(ref, None) if isinstance(ref, str) else None

    def _changes_dropped(self) -> list[str]:
        """The edits and deletions without an answer when the connection dropped, in words."""
        lines = [
            f"no answer to {what} before the connection dropped"
            for what in self._changes.values()
        ]
        self._changes.clear()
        return lines

    def _change_line(self, frame: Frame) -> list[str]:
        """An ``edited`` or ``deleted`` event, once (its id counts in the room's sequence)."""
        log, event_id = self.rooms.get(frame["room"]), frame["id"]
        if (
            log is None
            or not isinstance(event_id, int)
            or not log.first_sight(event_id)
        ):
            return []
        if frame["type"] == "edited":
            return [self.formatter.edited(frame)]
        return [self.formatter.deleted(frame)]

    def _on_edited(self, frame: Frame) -> Output:
        return Output(show=self._change_line(frame))

    def _on_deleted(self, frame: Frame) -> Output:
        return Output(show=self._change_line(frame))

    # -- typing and read markers --

    def _on_typing(self, frame: Frame) -> Output:
        return Output(show=self._typing_line(frame))

    def _on_read(self, frame: Frame) -> Output:
        """Our read marker moved (here or on another connection): nothing to show."""
        return Output()

    # -- says sent again --

    def _send_again(self, says: list[PendingSay]) -> Output:
        out = Output()
        for say in says:
            frame = self.says.again(say)
            if frame is not None:
                out.resend.append(frame)
            else:
                line = f"not stored in {say.room} after {say.tries} tries: “{preview(say.text)}”"
                out.show.append(self.formatter.error(line))
        return out

    def settle(self, upto: int) -> Output:
        """A while after the ``upto``-th ``rate_limited``: the says still in doubt since then
        were dropped; sent again."""
        return self._send_again(self.says.settle(upto))

    def mark_sent(self, frame: str) -> None:
        """The edge sent ``frame`` (frames wait in its queue until the pace allows)."""
        self.says.on_sent(frame)

    def _typing_line(self, frame: Frame) -> list[str]:
        room, user, expires_in = (
            str(frame["room"]),
            str(frame["user"]),
            frame["expires_in"],
        )
        if room not in self.rooms or not isinstance(expires_in, (int, float)):
            return []
        now, key = self._clock(), (room, user)
        shown_until = self._typing.get(key)
        self._typing[key] = now + float(expires_in)
        if shown_until is not None and now < shown_until:
            return []  # the same burst: said already
        return [self.formatter.info(f"{user} {TYPING} ({room})")]

    def _typed(self, frame: Frame) -> None:
        """A message from a user ends their typing burst: the next ``typing`` is said again."""
        self._typing.pop((str(frame.get("room")), str(frame.get("user"))), None)


def change_refused(what: str, message: str) -> str:
    return f"{what} not done: {message}"
