"""The chat protocol from the client's side (`rawws chat --user`, `rawws send --user`), as plain code.

No sockets, no asyncio, no clock of its own here: frames and typed commands in,
frames and screen lines out, so every rule is tested without a server. The asyncio
edge is ``rawws.chatclient.session`` (the reconnecting terminal loop, paced).

* ``Formatter`` (``rawws.chatclient.formatter``): server frames → one line each.
* ``Says`` (``rawws.chatclient.says``): typed lines until the server stored them.
* ``RoomEvents`` (``rawws.chatclient.events``): recent history on join, edits,
  deletions, typing.
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
import time
from collections.abc import Callable

from rawws.chat.client_frames import (
    history_frame,
    join_frame,
    leave_frame,
    who_frame,
)
from rawws.chat.wire import (
    DEFAULT_ROOM,
    NO_SUCH_ROOM,
    RATE_LIMITED,
    TOO_MANY_ROOMS,
    UNAVAILABLE,
)
from rawws.chatclient.commands import (
    HELP,
    ROOM_RULE,
    BadInput,
    CreateRoom,
    DeleteMessage,
    EditMessage,
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
from rawws.chatclient.events import RoomEvents, change_refused
from rawws.chatclient.formatter import Formatter, Frame, decode, preview
from rawws.chatclient.output import Output
from rawws.chatclient.pacing import RateLimits
from rawws.chatclient.part import Parting, left_line
from rawws.chatclient.roomlog import RoomLog
from rawws.chatclient.says import PendingSay, Says

__all__ = ["ChatState", "Formatter", "Output", "PendingSay", "preview"]

# -- the client's state ------------------------------------------------------------------------


class ChatState(DirectMessages, Parting, RoomEvents):
    """One user's chat across connections: rooms, the current room, ids seen, says not yet acknowledged.

    The edge calls ``on_connected()`` for every new connection (it answers the
    join frames, with ``since`` on a re-join), ``receive()`` for every frame,
    ``command()`` for every typed command and ``on_disconnected()`` when the
    connection is gone. Nothing here blocks; the one clock read is ``clock``'s, for
    how long a "typing" line stands (tests pass their own).
    """

    def __init__(
        self,
        room: str = DEFAULT_ROOM,
        formatter: Formatter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not valid_room(room):
            raise ValueError(ROOM_RULE)
        self.formatter = formatter or Formatter()
        self.user: str | None = None
        self.rooms: dict[str, RoomLog] = {
            room: RoomLog()
        }  # joined (or being joined), in join order
        self.current: str | None = room
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
        self.says = Says(self._refs)  # typed lines not stored yet, by ref
        self.rate_limits: RateLimits | None = None  # the last welcome's
        self._direct_init()
        self._part_init()
        self._events_init(clock)

    @property
    def pending(self) -> dict[str, PendingSay]:
        """Says not acknowledged yet (queued or sent), by ref, in the order they were made."""
        return self.says.pending

    @property
    def answered(self) -> bool:
        """Every typed line stored, every first join's recent history in (what a quit waits for)."""
        return not self.says.pending and not self._recent

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
        frames, gone = self.says.requeue(set(self.rooms))  # never sent: no doubt
        out.send.extend(frames)
        for say in gone:
            line = f"not sent: you are no longer in {say.room}: “{preview(say.text)}”"
            out.show.append(self.formatter.error(line))
        if self.connections > 1:
            rooms = ", ".join(self.rooms) or "no room"
            out.show.append(
                self.formatter.info(
                    f"reconnected; rejoining {rooms} (missed messages follow)"
                )
            )
        return out

    def on_disconnected(self, *, quitting: bool = False) -> Output:
        """The connection is gone: says sent without an ack are reported (never sent again: no
        duplicates); the ones still queued go out on the next connection, unless quitting."""
        self.connected = False
        self._awaiting.clear()
        out = Output()
        lost = (
            list(self.says.pending.values()) if quitting else self.says.disconnected()
        )
        if quitting:
            self.says.pending.clear()
        for say in lost:
            if quitting and not say.sent:
                line = f"“{preview(say.text)}” in {say.room} not sent before quitting"
            elif quitting:
                line = f"no ack for “{preview(say.text)}” in {say.room} before quitting; it may not be stored"
            else:
                line = (
                    f"no ack for “{preview(say.text)}” in {say.room} before the connection dropped; "
                    "if it was stored it shows up after reconnecting"
                )
            out.show.append(self.formatter.error(line))
        out.show.extend(self.formatter.error(line) for line in self._parts_unanswered())
        self._release_held()  # not shown: the re-join's ``since`` brings them again
        out.show.extend(self.formatter.error(line) for line in self._changes_dropped())
        for whom, text in self._direct_dropped():
            line = f"/msg to {whom} not sent before the connection dropped: “{preview(text)}”"
            out.show.append(self.formatter.error(line))
        return out

    # -- frames from the server --

    def receive(self, data: str | bytes) -> Output:
        frame = decode(data)
        if isinstance(frame, str):
            return Output(show=[self.formatter.error(frame)])
        return self._dispatch(frame)

    def _dispatch(self, frame: Frame) -> Output:
        if self._holds(frame):
            return Output()  # after the room's recent history
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
        self.rate_limits = RateLimits.from_welcome(frame.get("limits"))
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
            unread = frame.get("unread")
            news = (
                f"; {unread} unread" if isinstance(unread, int) and unread > 0 else ""
            )
            out.show.append(
                self.formatter.info(
                    f"joined {room}" + (f"; here: {users}" if users else "") + news
                )
            )
            out.send.append(self._ask_recent(room))
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
        self._typed(frame)
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
        """A say stored (says in doubt sent before it were dropped: sent again), or an edit done."""
        ref = frame.get("ref")
        if not isinstance(ref, str) or self._change_answered(ref) is not None:
            return Output()
        return self._send_again(self.says.acked(ref))

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
        recent = self._recent_answer(frame)
        if (
            recent is not None
        ):  # what a first join asked for, then what came live meanwhile
            return self._and_held(Output(show=recent[0]), recent[1])
        messages = [m for m in frame["messages"] if isinstance(m, dict)]
        room = frame["room"]
        if not messages:
            return Output(show=[self.formatter.info(f"no messages in {room} yet")])
        head = self.formatter.info(
            f"the last {len(messages)} message{'s' if len(messages) != 1 else ''} of {room}:"
        )
        return Output(show=[head, *history_lines(self.formatter, messages)])

    def _and_held(self, out: Output, held: list[Frame]) -> Output:
        for frame in held:
            more = self._dispatch(frame)
            out.show.extend(more.show)
            out.send.extend(more.send)
        return out

    def _on_error(self, frame: Frame) -> Output:
        message = str(frame.get("message") or frame.get("code") or "error")
        code, ref = frame.get("code"), frame.get("ref")
        if code == RATE_LIMITED and ref is None:
            self.says.rate_limited()  # sent again when it is known which were dropped
            line = self.formatter.error(f"{message} (lines not stored are sent again)")
            # a join's history request may be what was dropped: show what waited for it
            return self._and_held(
                Output(show=[line], throttled=True), self._release_held()
            )
        say = self.says.failed(ref)
        if say is not None and code == UNAVAILABLE:
            return self._send_again([say])
        change = self._change_answered(ref)
        if change is not None:
            return Output(show=[self.formatter.error(change_refused(change, message))])
        out = Output()
        if (
            code == UNAVAILABLE and ref is None and self._recent
        ):  # a join's history failed
            self._and_held(out, self._release_held())
        refused = self._direct_refused(frame.get("ref"))
        if refused is not None:
            line = f"/msg to {refused[0]} not sent: {message}: “{preview(refused[1])}”"
            return Output(show=[self.formatter.error(line)])
        if say is not None:
            self.says.refused += 1
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
        self._release_held(room)
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
        if not self.connected and isinstance(command, SayLine) and self.current:
            self.says.new(self.current, command.text)  # sent once connected again
            return Output(show=[self.formatter.error("not connected: the line waits")])
        if not self.connected:
            return Output(
                show=[
                    self.formatter.error("not connected (reconnecting); nothing sent")
                ]
            )
        if isinstance(command, SayLine):
            return self._say(command.text)
        if isinstance(command, (EditMessage, DeleteMessage)):
            if self.current is None:
                return Output(
                    show=[self.formatter.error("you are in no room: /join ROOM first")]
                )
            return Output(send=[self._change_frame(command, self.current)])
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
            self._release_held(room)
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
        return self.says.new(room, text)

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
