"""The chat protocol from the client's side (`rawws chat --user`, `rawws send --user`), as plain code.

No sockets, no asyncio, no clock here: frames and typed commands in, frames and
screen lines out, so every rule is tested without a server. The asyncio edge is
``rawws.chatclient.session`` (the reconnecting terminal loop).

* ``Formatter``: server frames → one line each (``[room] user: text``).
* ``RoomLog``: the message ids of one room already shown (dedupe by room:id)
  and the ``since`` to re-join with after a dropped connection.
* ``ChatState``: the client's state machine over all of the above.

What a client reads from one frame alone (the ``welcome``, `rawws send --user`'s
outcome) is in ``rawws.chatclient.answers``.

Own messages are not echoed locally: a typed line shows up when the server's
``message`` with its id arrives (the ``ack`` before it only clears it from the
pending set, which is what an ``error`` with its ``ref`` is matched against).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rawws.chat.client_frames import (
    history_frame,
    join_frame,
    leave_frame,
    say_frame,
    who_frame,
)
from rawws.chat.wire import DEFAULT_ROOM, NO_SUCH_ROOM, TOO_MANY_ROOMS
from rawws.chatclient.commands import (
    HELP,
    ROOM_RULE,
    BadInput,
    CreateRoom,
    Help,
    InputCommand,
    InviteUser,
    JoinRoom,
    LeaveRoom,
    ListRooms,
    MessageUser,
    Moderate,
    PartRoom,
    Quit,
    SayLine,
    ShowHistory,
    WhoIsHere,
    valid_room,
)
from rawws.chatclient.direct import DirectMessages
from rawws.chatclient.doors import door_answer, door_frame, history_lines, member_line
from rawws.chatclient.part import Parting, left_line
from rawws.chatclient.roomlog import RoomLog

Frame = dict[str, Any]  # one decoded server frame
TEXT_PREVIEW_CHARS = 40


def preview(text: str) -> str:
    """A say on one short line, for an error that names it without flooding the screen."""
    one_line = " ".join(text.split())
    return (
        one_line
        if len(one_line) <= TEXT_PREVIEW_CHARS
        else one_line[: TEXT_PREVIEW_CHARS - 1] + "…"
    )


class Formatter:
    """Screen lines: ``12:34 [lobby] ada: hi``, ``* bob joined lobby``, ``! slow down``.

    ``localtime`` turns a message's ``ts`` (seconds since the epoch) into local
    time; tests pass ``time.gmtime``.
    """

    def __init__(
        self, localtime: Callable[[float], time.struct_time] = time.localtime
    ) -> None:
        self.localtime = localtime

    def message(self, frame: Frame) -> str:
        stamp = ""
        ts = frame.get("ts")
        if isinstance(ts, (int, float)) and not isinstance(ts, bool):
            try:
                stamp = time.strftime("%H:%M ", self.localtime(ts))
            except (OverflowError, OSError, ValueError):
                stamp = ""
        return f"{stamp}[{frame.get('room')}] {frame.get('user')}: {frame.get('text')}"

    @staticmethod
    def presence(frame: Frame) -> str:
        return f"* {frame.get('user')} {frame.get('event')} {frame.get('room')}"

    @staticmethod
    def info(text: str) -> str:
        return f"* {text}"

    @staticmethod
    def error(text: str) -> str:
        return f"! {text}"


# -- the client's state ------------------------------------------------------------------------


@dataclass(slots=True)
class Output:
    """What one event makes the client do: frames to send, lines to show."""

    send: list[str] = field(default_factory=list)
    show: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PendingSay:
    """A say sent and not yet acknowledged: what an ``error`` with its ref is reported against."""

    room: str
    text: str


class ChatState(DirectMessages, Parting):
    """One user's chat across connections: rooms, the current room, ids seen, says not yet acknowledged.

    The edge calls ``on_connected()`` for every new connection (it answers the
    join frames, with ``since`` on a re-join), ``receive()`` for every frame,
    ``command()`` for every typed command and ``on_disconnected()`` when the
    connection is gone. Nothing here blocks or reads a clock.
    """

    def __init__(
        self, room: str = DEFAULT_ROOM, formatter: Formatter | None = None
    ) -> None:
        if not valid_room(room):
            raise ValueError(ROOM_RULE)
        self.formatter = formatter or Formatter()
        self.user: str | None = None
        self.rooms: dict[str, RoomLog] = {
            room: RoomLog()
        }  # joined (or being joined), in join order
        self.current: str | None = room
        self.pending: dict[str, PendingSay] = {}  # ref -> say not yet acknowledged
        self.connected = False
        self.connections = 0
        self.duplicates = (
            0  # messages received again (a replay overlapping what was shown)
        )
        self._awaiting: set[str] = (
            set()
        )  # rooms whose ``joined`` has not come on this connection
        self._unconfirmed_joins: list[
            tuple[str, str | None]
        ] = []  # (room, current before) of /join in flight
        self._refs = itertools.count(1)
        self._direct_init()
        self._part_init()

    @property
    def recovered(self) -> bool:
        """Connected, and every room answered its (re-)join."""
        return self.connected and not self._awaiting

    # -- connection events --

    def on_connected(self) -> Output:
        self.connected = True
        self.connections += 1
        self._awaiting = set(self.rooms)
        self._unconfirmed_joins.clear()
        out = Output(
            send=[join_frame(room, log.since) for room, log in self.rooms.items()]
        )
        if self.connections > 1:
            rooms = ", ".join(self.rooms) or "no room"
            out.show.append(
                self.formatter.info(
                    f"reconnected; rejoining {rooms} (missed messages follow)"
                )
            )
        return out

    def on_disconnected(self, *, quitting: bool = False) -> Output:
        """The connection is gone: says without an ack are reported (never sent again: no duplicates)."""
        self.connected = False
        self._awaiting.clear()
        out = Output()
        for say in self.pending.values():
            if quitting:
                line = f"no ack for “{preview(say.text)}” in {say.room} before quitting; it may not be stored"
            else:
                line = (
                    f"no ack for “{preview(say.text)}” in {say.room} before the connection dropped; "
                    "if it was stored it shows up after reconnecting"
                )
            out.show.append(self.formatter.error(line))
        self.pending.clear()
        out.show.extend(self.formatter.error(line) for line in self._parts_unanswered())
        for whom, text in self._direct_dropped():
            line = f"/msg to {whom} not sent before the connection dropped: “{preview(text)}”"
            out.show.append(self.formatter.error(line))
        return out

    # -- frames from the server --

    def receive(self, data: str | bytes) -> Output:
        if isinstance(data, bytes):
            return Output(
                show=[self.formatter.error("the server sent a binary frame; ignored")]
            )
        try:
            frame = json.loads(data)
        except ValueError:
            return Output(
                show=[
                    self.formatter.error(
                        "the server sent a frame that is not JSON; ignored"
                    )
                ]
            )
        if not isinstance(frame, dict):
            return Output(
                show=[
                    self.formatter.error(
                        "the server sent a frame that is not a JSON object; ignored"
                    )
                ]
            )
        kind = frame.get("type")
        handler: Callable[[Frame], Output] | None = (
            getattr(self, f"_on_{kind}", None) if isinstance(kind, str) else None
        )
        if (
            handler is None
        ):  # an answer to a door command, or a frame type from a newer server
            handler = self._on_door
        try:
            return handler(frame)
        except (KeyError, TypeError, ValueError, AttributeError):
            return Output(
                show=[
                    self.formatter.error(
                        f"malformed {frame.get('type')} frame from the server; ignored"
                    )
                ]
            )

    def _on_welcome(self, frame: Frame) -> Output:
        first = self.user is None
        self.user = str(frame["user"])
        return Output(
            show=[self.formatter.info(f"signed in as {self.user}")] if first else []
        )

    def _on_joined(self, frame: Frame) -> Output:
        room = frame["room"]
        log = self.rooms.get(room)
        if log is None:
            return Output()  # left again meanwhile
        rejoin = (
            log.floor is not None
        )  # joined on an earlier connection: this is a recovery
        self._awaiting.discard(room)
        self._unconfirmed_joins = [
            entry for entry in self._unconfirmed_joins if entry[0] != room
        ]
        last_id = frame["last_id"]
        if not isinstance(last_id, int):
            raise TypeError("last_id")
        out = Output()
        if not log.joined(last_id):
            out.show.append(
                self.formatter.error(
                    f"{room} has fewer messages than before: the server's data was reset"
                )
            )
        if not rejoin:
            users = ", ".join(str(user) for user in frame.get("users") or [])
            out.show.append(
                self.formatter.info(
                    f"joined {room}" + (f"; here: {users}" if users else "")
                )
            )
        out.send.extend(self._say_in(room, text) for text in self._said_in(room))
        return out

    def _on_direct(self, frame: Frame) -> Output:
        send, show, now = self._direct_answer(frame, RoomLog(0))
        send.extend(self._say_in(str(frame["room"]), text) for text in now)
        return Output(send, [self.formatter.info(line) for line in show])

    def _on_door(self, frame: Frame) -> Output:
        return Output(show=door_answer(frame, self.formatter, set(self.rooms)) or [])

    def _on_left(self, frame: Frame) -> Output:
        """A plain leave dropped its room already; a part's room goes now it is answered."""
        room, out = frame["room"], Output(show=[self.formatter.info(left_line(frame))])
        if self._parted(room):
            self._drop(room, self._other_room(room), out)
        return out

    def _on_message(self, frame: Frame) -> Output:
        room, message_id = frame["room"], frame["id"]
        log = self.rooms.get(room)
        if log is None or not isinstance(message_id, int):
            return Output()
        if not log.first_sight(message_id):
            self.duplicates += 1
            return Output()
        return Output(show=[self.formatter.message(frame)])

    def _on_member(self, frame: Frame) -> Output:
        """A membership event takes an id like a message: counted, so ``since`` stays exact."""
        log, line = self.rooms.get(frame["room"]), member_line(frame)
        new = (
            log is not None
            and isinstance(frame["id"], int)
            and log.first_sight(frame["id"])
        )
        return Output(show=[self.formatter.info(line)] if new else [])

    def _on_removed(self, frame: Frame) -> Output:
        """Kicked, banned, or parted on another connection: the room is no longer ours (nor re-joined)."""
        quiet = frame.get("reason") == "left"  # our own doing: no alarm
        tell = self.formatter.info if quiet else self.formatter.error
        out = Output(show=[tell(member_line(frame))])
        self._drop(frame["room"], next(iter(self.rooms), None), out)
        return out

    def _on_ack(self, frame: Frame) -> Output:
        ref = frame.get("ref")
        if ref is not None:
            self.pending.pop(ref, None)
        return Output()

    def _on_presence(self, frame: Frame) -> Output:
        if frame["room"] not in self.rooms:
            return Output()
        return Output(show=[self.formatter.presence(frame)])

    def _on_members(self, frame: Frame) -> Output:
        users = ", ".join(str(user) for user in frame["users"])
        room = frame["room"]
        return Output(
            show=[
                self.formatter.info(
                    f"in {room}: {users}" if users else f"nobody in {room}"
                )
            ]
        )

    def _on_history(self, frame: Frame) -> Output:
        messages = [m for m in frame["messages"] if isinstance(m, dict)]
        room = frame["room"]
        if not messages:
            return Output(show=[self.formatter.info(f"no messages in {room} yet")])
        head = self.formatter.info(
            f"the last {len(messages)} message{'s' if len(messages) != 1 else ''} of {room}:"
        )
        return Output(show=[head, *history_lines(self.formatter, messages)])

    def _on_error(self, frame: Frame) -> Output:
        message = str(frame.get("message") or frame.get("code") or "error")
        say = (
            self.pending.pop(frame["ref"], None)
            if isinstance(frame.get("ref"), str)
            else None
        )
        out = Output()
        refused = self._direct_refused(frame.get("ref"))
        if refused is not None:
            line = f"/msg to {refused[0]} not sent: {message}: “{preview(refused[1])}”"
            return Output(show=[self.formatter.error(line)])
        if say is not None:
            out.show.append(
                self.formatter.error(
                    f"not sent to {say.room}: {message}: “{preview(say.text)}”"
                )
            )
            return out
        out.show.append(self.formatter.error(message))
        self._part_refused(frame)
        if (
            frame.get("code") in (TOO_MANY_ROOMS, NO_SUCH_ROOM)
            and self._unconfirmed_joins
        ):
            self._drop(*self._unconfirmed_joins.pop(), out)
        return out

    def _drop(self, room: str, before: str | None, out: Output) -> None:
        """``room`` is not ours (refused, or we were removed): talk in ``before`` or nowhere."""
        self.rooms.pop(room, None)
        self._awaiting.discard(room)
        self._parting.discard(room)
        if self.current == room:
            self.current = before if before in self.rooms else None
            out.show.append(self._talking_in())

    # -- typed commands --

    def command(self, command: InputCommand) -> Output:
        if isinstance(command, BadInput):
            return Output(show=[self.formatter.error(command.message)])
        if isinstance(command, Help):
            return Output(show=list(HELP))
        if isinstance(command, ListRooms):  # ours at once, then every room we may join
            return Output(
                send=[door_frame(None)] if self.connected else [],
                show=[self._rooms_line()],
            )
        if isinstance(command, Quit):
            return Output()
        if isinstance(command, JoinRoom) and command.room in self.rooms:
            self.current = command.room
            return Output(show=[self._talking_in()])
        if not self.connected:
            return Output(
                show=[
                    self.formatter.error("not connected (reconnecting); nothing sent")
                ]
            )
        if isinstance(command, SayLine):
            return self._say(command.text)
        if isinstance(command, (CreateRoom, InviteUser, Moderate)):
            return Output(send=[door_frame(command)])
        if isinstance(command, MessageUser):
            return Output(send=[self._ask_direct(command)])
        if isinstance(command, JoinRoom):
            self._unconfirmed_joins.append((command.room, self.current))
            self.rooms[command.room] = RoomLog()
            self._awaiting.add(command.room)
            self.current = command.room
            return Output(send=[join_frame(command.room)])
        room = getattr(command, "room", None) or self.current
        if room is None:
            return Output(
                show=[self.formatter.error("you are in no room: /join ROOM first")]
            )
        if isinstance(command, LeaveRoom):
            if room not in self.rooms:
                return Output(show=[self.formatter.error(f"you are not in {room}")])
            del self.rooms[room]
            self._awaiting.discard(room)
            self._parting.discard(room)
            out = Output(send=[leave_frame(room)])
            if self.current == room:
                self.current = next(reversed(self.rooms), None)
                out.show.append(self._talking_in())
            return out
        if isinstance(command, PartRoom):
            send, refused = self._part(room)
            return Output(send, [self.formatter.error(refused)] if refused else [])
        if isinstance(command, WhoIsHere):
            return Output(send=[who_frame(room)])
        if isinstance(command, ShowHistory):
            return Output(send=[history_frame(room, command.count)])
        raise TypeError(f"not a command: {command!r}")

    def _say(self, text: str) -> Output:
        if self.current is None:
            return Output(
                show=[self.formatter.error("you are in no room: /join ROOM first")]
            )
        return Output(send=[self._say_in(self.current, text)])

    def _say_in(self, room: str, text: str) -> str:
        ref = f"c{next(self._refs)}"
        self.pending[ref] = PendingSay(room, text)
        return say_frame(room, text, ref)

    def _talking_in(self) -> str:
        if self.current is None:
            return self.formatter.info("you are in no room now: /join ROOM")
        return self.formatter.info(f"talking in {self.current}")

    def _rooms_line(self) -> str:
        if not self.rooms:
            return self.formatter.info("you are in no room")
        names = [
            f"{room} (current)" if room == self.current else room for room in self.rooms
        ]
        return self.formatter.info("rooms: " + ", ".join(names))
