"""The chat protocol from the client's side (`rawws chat --user`, `rawws send --user`), as plain code.

No sockets, no asyncio, no clock here: frames and typed lines in, frames and
screen lines out, so every rule is tested without a server. The edges are
``rawws.terminal.chat_session`` (the reconnecting terminal loop) and
``rawws.cli`` (login over HTTP, ``rawws send``).

* ``chat_target``: the URL rule. ``ws://``, ``wss://``, ``http://`` or
  ``https://`` ``host[:port]`` names the server; the WebSocket is its ``/ws``
  (or the path given) on the same host and port, and ``/auth/login`` and
  ``/auth/ticket`` are asked over ``http``/``https`` to match ``ws``/``wss``.
* ``parse_input``: a typed line → ``Say`` or a ``/command``.
* ``Formatter``: server frames → one line each (``[room] user: text``).
* ``RoomLog``: the message ids of one room already shown (dedupe by room:id)
  and the ``since`` to re-join with after a dropped connection.
* ``ChatState``: the client's state machine over all of the above.
* ``Backoff`` and ``should_reconnect``: when and how often to reconnect.
* ``HttpExchange``: one HTTP request and its answer over h11 (login, tickets).

Own messages are not echoed locally: a typed line shows up when the server's
``message`` with its id arrives (the ``ack`` before it only clears it from the
pending set, which is what an ``error`` with its ``ref`` is matched against).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit

import h11

from rawws.chat.protocol import DEFAULT_ROOM, MAX_HISTORY_LIMIT, MAX_TEXT_CHARS, ROOM_NAME, dumps
from rawws.core.client_handshake import HandshakeRejected, InvalidHandshake, InvalidURI
from rawws.core.connection import ConnectionClosed
from rawws.errors import RawwsError

CHAT_PATH = "/ws"
LOGIN_PATH = "/auth/login"
TICKET_PATH = "/auth/ticket"
CREDENTIAL_PARAMS = ("token", "ticket")
DEFAULT_HISTORY_COUNT = 20
MAX_HTTP_ANSWER_BYTES = 64 * 1024
TEXT_PREVIEW_CHARS = 40

# Reconnect after these close codes (going away, lost, policy such as "slow consumer" or
# "token expired", server error, restart, try again later, bad gateway); never after 1000,
# nor after a close that says our own frames were wrong (1002, 1003, 1007, 1009, 1010).
RECONNECT_CLOSE_CODES = frozenset({1001, 1006, 1008, 1011, 1012, 1013, 1014})

ROOM_RULE = "room names are 1-32 characters of a-z, 0-9, '_' and '-', starting with a letter or digit"


def valid_room(name: str) -> bool:
    return ROOM_NAME.fullmatch(name) is not None


# -- the URL rule -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatTarget:
    """The server a ``--user`` client talks to: its HTTP endpoints and its chat WebSocket."""

    secure: bool
    host: str
    port: int
    path: str = CHAT_PATH
    query: tuple[tuple[str, str], ...] = ()

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == (443 if self.secure else 80) else f"{host}:{self.port}"

    @property
    def display(self) -> str:
        """``ws://host:port/ws``: what may be printed (never a ticket)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'wss' if self.secure else 'ws'}://{host}:{self.port}{self.path}"

    def ws_url(self, ticket: str) -> str:
        """The URL to open with a fresh ticket. Not to be printed or logged."""
        return self.display + "?" + urlencode([*self.query, ("ticket", ticket)])


def chat_target(url: str) -> ChatTarget:
    """``ws://host:port``, ``http://host:port``, ``wss://…``, ``https://…``, or a full ``ws://host:port/ws``.

    An empty path or ``/`` means ``/ws``; another path is used as the chat
    endpoint as given. A ``token`` or ``ticket`` in the query is refused:
    ``--user`` gets its own.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURI(f"{url!r} is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss", "http", "https"):
        raise InvalidURI(f"{url!r}: use ws://, wss://, http:// or https://HOST[:PORT]")
    if not parts.hostname:
        raise InvalidURI(f"{url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidURI(f"{url!r} has user info; use --user")
    if parts.fragment:
        raise InvalidURI(f"{url!r} has a fragment")
    query = tuple(parse_qsl(parts.query, keep_blank_values=True))
    if any(name in CREDENTIAL_PARAMS for name, _ in query):
        raise InvalidURI("--user logs in by itself: leave token= and ticket= out of the URL")
    secure = scheme in ("wss", "https")
    path = parts.path if parts.path not in ("", "/") else CHAT_PATH
    return ChatTarget(secure, parts.hostname, port if port is not None else (443 if secure else 80), path, query)


def url_credential(url: str) -> str | None:
    """``"token"`` or ``"ticket"`` when the URL's query carries one (the chat protocol is spoken), else ``None``."""
    try:
        query = urlsplit(url).query
    except ValueError:
        return None
    names = {name for name, _ in parse_qsl(query, keep_blank_values=True)}
    return next((name for name in CREDENTIAL_PARAMS if name in names), None)


# -- frames we send ----------------------------------------------------------------------


def join_frame(room: str, since: int | None = None) -> str:
    return dumps({"type": "join", "room": room} if since is None else {"type": "join", "room": room, "since": since})


def leave_frame(room: str) -> str:
    return dumps({"type": "leave", "room": room})


def say_frame(room: str, text: str, ref: str) -> str:
    return dumps({"type": "say", "room": room, "text": text, "ref": ref})


def who_frame(room: str) -> str:
    return dumps({"type": "who", "room": room})


def history_frame(room: str, limit: int) -> str:
    return dumps({"type": "history", "room": room, "limit": limit})


def check_text(text: str) -> str | None:
    """Why the server would refuse this text, or ``None``."""
    if not text.strip():
        return "empty message"
    if len(text) > MAX_TEXT_CHARS:
        return f"message too long: {len(text)} characters, at most {MAX_TEXT_CHARS}"
    return None


# -- typed lines -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Say:
    text: str


@dataclass(frozen=True, slots=True)
class JoinRoom:
    room: str


@dataclass(frozen=True, slots=True)
class LeaveRoom:
    room: str | None = None  # None: the current room


@dataclass(frozen=True, slots=True)
class WhoIsHere:
    room: str | None = None


@dataclass(frozen=True, slots=True)
class ShowHistory:
    count: int = DEFAULT_HISTORY_COUNT


@dataclass(frozen=True, slots=True)
class ListRooms:
    pass


@dataclass(frozen=True, slots=True)
class Help:
    pass


@dataclass(frozen=True, slots=True)
class Quit:
    pass


@dataclass(frozen=True, slots=True)
class BadInput:
    message: str


InputCommand = Say | JoinRoom | LeaveRoom | WhoIsHere | ShowHistory | ListRooms | Help | Quit | BadInput

HELP = (
    "* type a line to say it in the current room; a line starting with / is a command ('//' sends a '/'):",
    "*   /join ROOM     join ROOM (or switch to it) and talk there",
    "*   /leave [ROOM]  leave ROOM (default: the current room)",
    "*   /who [ROOM]    who is in the room now",
    (
        f"*   /history [N]   the last N messages of the current room (default {DEFAULT_HISTORY_COUNT}, "
        f"at most {MAX_HISTORY_LIMIT})"
    ),
    "*   /rooms         the rooms you are in",
    "*   /quit          leave (also Ctrl-D or Ctrl-C)",
)


def parse_input(line: str) -> InputCommand | None:
    """A typed line → what to do; ``None`` for a blank line."""
    if not line.strip():
        return None
    if line.startswith("//"):
        text = line[1:]
    elif line.startswith("/"):
        return _parse_command(line)
    else:
        text = line
    problem = check_text(text)
    return BadInput(problem) if problem else Say(text)


def _parse_command(line: str) -> InputCommand:
    name, *args = line[1:].split()
    name = name.lower()
    if name in ("quit", "exit"):
        return Quit() if not args else BadInput(f"/{name} takes no arguments")
    if name in ("help", "?"):
        return Help()
    if name == "rooms":
        return ListRooms() if not args else BadInput("/rooms takes no arguments")
    if name == "join":
        if len(args) != 1:
            return BadInput("usage: /join ROOM")
        return JoinRoom(args[0]) if valid_room(args[0]) else BadInput(ROOM_RULE)
    if name in ("leave", "who"):
        if len(args) > 1:
            return BadInput(f"usage: /{name} [ROOM]")
        room = args[0] if args else None
        if room is not None and not valid_room(room):
            return BadInput(ROOM_RULE)
        return LeaveRoom(room) if name == "leave" else WhoIsHere(room)
    if name == "history":
        if not args:
            return ShowHistory()
        if len(args) == 1 and args[0].isdigit() and 1 <= int(args[0]) <= MAX_HISTORY_LIMIT:
            return ShowHistory(int(args[0]))
        return BadInput(f"usage: /history [N], N from 1 to {MAX_HISTORY_LIMIT}")
    return BadInput(f"unknown command /{name} (/help lists them)")


# -- what is shown ---------------------------------------------------------------------------


def preview(text: str) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= TEXT_PREVIEW_CHARS else one_line[: TEXT_PREVIEW_CHARS - 1] + "…"


class Formatter:
    """Screen lines: ``12:34 [lobby] ada: hi``, ``* bob joined lobby``, ``! slow down``.

    ``localtime`` turns a message's ``ts`` (seconds since the epoch) into local
    time; tests pass ``time.gmtime``.
    """

    def __init__(self, localtime: Callable[[float], time.struct_time] = time.localtime) -> None:
        self.localtime = localtime

    def message(self, frame: dict) -> str:
        stamp = ""
        ts = frame.get("ts")
        if isinstance(ts, (int, float)) and not isinstance(ts, bool):
            try:
                stamp = time.strftime("%H:%M ", self.localtime(ts))
            except (OverflowError, OSError, ValueError):
                stamp = ""
        return f"{stamp}[{frame.get('room')}] {frame.get('user')}: {frame.get('text')}"

    @staticmethod
    def presence(frame: dict) -> str:
        return f"* {frame.get('user')} {frame.get('event')} {frame.get('room')}"

    @staticmethod
    def info(text: str) -> str:
        return f"* {text}"

    @staticmethod
    def error(text: str) -> str:
        return f"! {text}"


# -- dedupe: message ids already shown ---------------------------------------------------------


class RoomLog:
    """The ids of one room's messages that were shown (or were history when we joined).

    Everything up to ``floor`` is done; ``above`` holds ids past it that came out
    of order. Ids increase by one per room, so in the normal case ``above`` stays
    empty and this is a per-room high-water mark; a gap is re-fetched on
    recovery because ``since`` is the floor, and the ids past it are not shown twice.
    """

    __slots__ = ("above", "floor")

    def __init__(self, floor: int | None = None) -> None:
        self.floor = floor  # None until the server's ``joined`` says where the room was
        self.above: set[int] = set()

    @property
    def since(self) -> int | None:
        """What to re-join with: every id above it is wanted."""
        return self.floor

    def joined(self, last_id: int) -> bool:
        """The server's ``joined``; ``False`` when the room went back in time (its data was reset)."""
        if self.floor is None:
            self.floor = last_id  # a fresh join: what came before is history, not news
            return True
        if last_id >= self.floor:
            return True  # a re-join: the replay brings what is past the floor
        self.floor, self.above = last_id, set()
        return False

    def first_sight(self, message_id: int) -> bool:
        """Record ``message_id``; ``True`` the first time only."""
        floor = self.floor or 0
        if message_id <= floor or message_id in self.above:
            return False
        self.above.add(message_id)
        while floor + 1 in self.above:
            floor += 1
            self.above.remove(floor)
        self.floor = floor
        return True


# -- the client's state ------------------------------------------------------------------------


@dataclass(slots=True)
class Output:
    """What one event makes the client do: frames to send, lines to show."""

    send: list[str] = field(default_factory=list)
    show: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PendingSay:
    room: str
    text: str


class ChatState:
    """One user's chat across connections: rooms, the current room, ids seen, says not yet acknowledged.

    The edge calls ``on_connected()`` for every new connection (it answers the
    join frames, with ``since`` on a re-join), ``receive()`` for every frame,
    ``command()`` for every typed command and ``on_disconnected()`` when the
    connection is gone. Nothing here blocks or reads a clock.
    """

    def __init__(self, room: str = DEFAULT_ROOM, formatter: Formatter | None = None) -> None:
        if not valid_room(room):
            raise ValueError(ROOM_RULE)
        self.formatter = formatter or Formatter()
        self.user: str | None = None
        self.rooms: dict[str, RoomLog] = {room: RoomLog()}  # joined (or being joined), in join order
        self.current: str | None = room
        self.pending: dict[str, PendingSay] = {}  # ref -> say not yet acknowledged
        self.connected = False
        self.connections = 0
        self.duplicates = 0  # messages received again (a replay overlapping what was shown)
        self._awaiting: set[str] = set()  # rooms whose ``joined`` has not come on this connection
        self._unconfirmed_joins: list[tuple[str, str | None]] = []  # (room, current before) of /join in flight
        self._refs = itertools.count(1)

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
        out = Output(send=[join_frame(room, log.since) for room, log in self.rooms.items()])
        if self.connections > 1:
            rooms = ", ".join(self.rooms) or "no room"
            out.show.append(self.formatter.info(f"reconnected; rejoining {rooms} (missed messages follow)"))
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
        return out

    # -- frames from the server --

    def receive(self, data: str | bytes) -> Output:
        if isinstance(data, bytes):
            return Output(show=[self.formatter.error("the server sent a binary frame; ignored")])
        try:
            frame = json.loads(data)
        except ValueError:
            return Output(show=[self.formatter.error("the server sent a frame that is not JSON; ignored")])
        if not isinstance(frame, dict):
            return Output(show=[self.formatter.error("the server sent a frame that is not a JSON object; ignored")])
        handler = getattr(self, f"_on_{frame.get('type')}", None) if isinstance(frame.get("type"), str) else None
        if handler is None:
            return Output()  # a frame type from a newer server: nothing to show
        try:
            return handler(frame)
        except (KeyError, TypeError, ValueError, AttributeError):
            return Output(show=[self.formatter.error(f"malformed {frame.get('type')} frame from the server; ignored")])

    def _on_welcome(self, frame: dict) -> Output:
        first = self.user is None
        self.user = str(frame["user"])
        return Output(show=[self.formatter.info(f"signed in as {self.user}")] if first else [])

    def _on_joined(self, frame: dict) -> Output:
        room = frame["room"]
        log = self.rooms.get(room)
        if log is None:
            return Output()  # left again meanwhile
        rejoin = log.floor is not None  # joined on an earlier connection: this is a recovery
        self._awaiting.discard(room)
        self._unconfirmed_joins = [entry for entry in self._unconfirmed_joins if entry[0] != room]
        last_id = frame["last_id"]
        if not isinstance(last_id, int):
            raise TypeError("last_id")
        out = Output()
        if not log.joined(last_id):
            out.show.append(self.formatter.error(f"{room} has fewer messages than before: the server's data was reset"))
        if not rejoin:
            users = ", ".join(str(user) for user in frame.get("users") or [])
            out.show.append(self.formatter.info(f"joined {room}" + (f"; here: {users}" if users else "")))
        return out

    def _on_left(self, frame: dict) -> Output:
        return Output(show=[self.formatter.info(f"left {frame['room']}")])

    def _on_message(self, frame: dict) -> Output:
        room, message_id = frame["room"], frame["id"]
        log = self.rooms.get(room)
        if log is None or not isinstance(message_id, int):
            return Output()
        if not log.first_sight(message_id):
            self.duplicates += 1
            return Output()
        return Output(show=[self.formatter.message(frame)])

    def _on_ack(self, frame: dict) -> Output:
        self.pending.pop(frame.get("ref"), None)
        return Output()

    def _on_presence(self, frame: dict) -> Output:
        if frame["room"] not in self.rooms:
            return Output()
        return Output(show=[self.formatter.presence(frame)])

    def _on_members(self, frame: dict) -> Output:
        users = ", ".join(str(user) for user in frame["users"])
        room = frame["room"]
        return Output(show=[self.formatter.info(f"in {room}: {users}" if users else f"nobody in {room}")])

    def _on_history(self, frame: dict) -> Output:
        messages = [m for m in frame["messages"] if isinstance(m, dict)]
        room = frame["room"]
        if not messages:
            return Output(show=[self.formatter.info(f"no messages in {room} yet")])
        head = self.formatter.info(f"the last {len(messages)} message{'s' if len(messages) != 1 else ''} of {room}:")
        return Output(show=[head, *(self.formatter.message(m) for m in messages)])

    def _on_error(self, frame: dict) -> Output:
        message = str(frame.get("message") or frame.get("code") or "error")
        say = self.pending.pop(frame["ref"], None) if isinstance(frame.get("ref"), str) else None
        out = Output()
        if say is not None:
            out.show.append(self.formatter.error(f"not sent to {say.room}: {message}: “{preview(say.text)}”"))
            return out
        out.show.append(self.formatter.error(message))
        if frame.get("code") == "too_many_rooms" and self._unconfirmed_joins:
            room, before = self._unconfirmed_joins.pop()
            self.rooms.pop(room, None)
            self._awaiting.discard(room)
            if self.current == room:
                self.current = before if before in self.rooms else None
                out.show.append(self._talking_in())
        return out

    # -- typed commands --

    def command(self, command: InputCommand) -> Output:
        if isinstance(command, BadInput):
            return Output(show=[self.formatter.error(command.message)])
        if isinstance(command, Help):
            return Output(show=list(HELP))
        if isinstance(command, ListRooms):
            return Output(show=[self._rooms_line()])
        if isinstance(command, Quit):
            return Output()
        if isinstance(command, JoinRoom) and command.room in self.rooms:
            self.current = command.room
            return Output(show=[self._talking_in()])
        if not self.connected:
            return Output(show=[self.formatter.error("not connected (reconnecting); nothing sent")])
        if isinstance(command, Say):
            return self._say(command.text)
        if isinstance(command, JoinRoom):
            self._unconfirmed_joins.append((command.room, self.current))
            self.rooms[command.room] = RoomLog()
            self._awaiting.add(command.room)
            self.current = command.room
            return Output(send=[join_frame(command.room)])
        room = getattr(command, "room", None) or self.current
        if room is None:
            return Output(show=[self.formatter.error("you are in no room: /join ROOM first")])
        if isinstance(command, LeaveRoom):
            if room not in self.rooms:
                return Output(show=[self.formatter.error(f"you are not in {room}")])
            del self.rooms[room]
            self._awaiting.discard(room)
            out = Output(send=[leave_frame(room)])
            if self.current == room:
                self.current = next(reversed(self.rooms), None)
                out.show.append(self._talking_in())
            return out
        if isinstance(command, WhoIsHere):
            return Output(send=[who_frame(room)])
        if isinstance(command, ShowHistory):
            return Output(send=[history_frame(room, command.count)])
        raise TypeError(f"not a command: {command!r}")

    def _say(self, text: str) -> Output:
        if self.current is None:
            return Output(show=[self.formatter.error("you are in no room: /join ROOM first")])
        ref = f"c{next(self._refs)}"
        self.pending[ref] = PendingSay(self.current, text)
        return Output(send=[say_frame(self.current, text, ref)])

    def _talking_in(self) -> str:
        if self.current is None:
            return self.formatter.info("you are in no room now: /join ROOM")
        return self.formatter.info(f"talking in {self.current}")

    def _rooms_line(self) -> str:
        if not self.rooms:
            return self.formatter.info("you are in no room")
        names = [f"{room} (current)" if room == self.current else room for room in self.rooms]
        return self.formatter.info("rooms: " + ", ".join(names))


# -- `rawws send --user`: the one answer that matters ------------------------------------------


@dataclass(frozen=True, slots=True)
class Stored:
    room: str
    id: int


@dataclass(frozen=True, slots=True)
class NotStored:
    code: str
    message: str


def send_outcome(data: str | bytes, ref: str) -> Stored | NotStored | None:
    """A frame received after ``join`` + ``say(ref)``: the outcome once it is known, else ``None``.

    Any ``error`` ends it: the only frames sent are the join and the say, so an
    error without our ref is the join's (and the say then fails as ``not_joined``).
    """
    if isinstance(data, bytes):
        return None
    try:
        frame = json.loads(data)
    except ValueError:
        return None
    if not isinstance(frame, dict):
        return None
    if frame.get("type") == "ack" and frame.get("ref") == ref and isinstance(frame.get("id"), int):
        return Stored(str(frame.get("room")), frame["id"])
    if frame.get("type") == "error":
        return NotStored(str(frame.get("code") or "error"), str(frame.get("message") or "refused"))
    return None


# -- reconnecting --------------------------------------------------------------------------------


def should_reconnect(close_code: int | None) -> bool:
    """A connection that ended with this code is worth opening again (``None``: lost without a code)."""
    return close_code is None or close_code in RECONNECT_CLOSE_CODES


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with "equal jitter": attempt n waits between half and all of min(cap, initial·2ⁿ⁻¹).

    Half the delay is random so that many clients dropped at once do not come
    back at once; the other half keeps a floor so none hammers the server.
    """

    initial_s: float = 0.5
    cap_s: float = 15.0
    attempts: int = 10
    factor: float = 2.0

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.cap_s < self.initial_s or self.attempts < 0 or self.factor < 1:
            raise ValueError("backoff needs 0 < initial <= cap, attempts >= 0 and factor >= 1")

    def ceiling(self, attempt: int) -> float:
        """The longest wait before attempt ``attempt`` (1-based)."""
        return min(self.cap_s, self.initial_s * self.factor ** min(attempt - 1, 64))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = self.ceiling(attempt)
        return (rng or random).uniform(ceiling / 2, ceiling)

    def schedule(self, rng: random.Random | None = None) -> list[float]:
        """Every delay, in order."""
        return [self.delay(attempt, rng) for attempt in range(1, self.attempts + 1)]


DEFAULT_BACKOFF = Backoff()


class AuthFailed(RawwsError):
    """``/auth/login`` or ``/auth/ticket`` said no (``status``), or answered something unreadable (``None``)."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    @property
    def retryable(self) -> bool:
        """Too many logins (429) or a server error may pass; a wrong password does not."""
        return self.status is not None and (self.status == 429 or self.status >= 500)


def retryable(error: BaseException) -> bool:
    """Whether a failed reconnection attempt is worth another one.

    A refused upgrade (an HTTP answer to it) and refused credentials are final;
    a server that is not listening, not answering or dropping us mid-way is
    not. Certificate failures (``ValueError``) are final too.
    """
    if isinstance(error, AuthFailed):
        return error.retryable
    if isinstance(error, HandshakeRejected):
        return False
    if isinstance(error, (InvalidHandshake, ConnectionClosed, TimeoutError)):
        return True
    if isinstance(error, ValueError):
        return False
    return isinstance(error, OSError)


def describe(error: BaseException) -> str:
    """One short line for a failed attempt; never a URL (it may hold a ticket)."""
    if isinstance(error, HandshakeRejected):
        return f"upgrade refused: HTTP {error.status} {error.reason}".rstrip()
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, ConnectionError) and error.errno:
        return os.strerror(error.errno)
    if isinstance(error, OSError):
        return error.strerror or str(error) or type(error).__name__
    return str(error) or type(error).__name__


# -- HTTP: login and tickets, sans I/O ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> object:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def error_message(self) -> str:
        """The server's ``{"error": {"message"}}``, else the status."""
        payload = self.json()
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            message = payload["error"].get("message")
            if isinstance(message, str) and message:
                return message[:200]
        return f"HTTP {self.status}"


class HttpExchange:
    """One request on its own connection (``Connection: close``): bytes out, bytes in, an ``HttpAnswer``."""

    def __init__(
        self,
        method: str,
        target: str,
        host_header: str,
        body: object | None = None,
        bearer: str | None = None,
    ) -> None:
        payload = b"" if body is None else json.dumps(body).encode("utf-8")
        headers = [("Host", host_header), ("Connection", "close"), ("Accept", "application/json")]
        if body is not None:
            headers.append(("Content-Type", "application/json"))
        headers.append(("Content-Length", str(len(payload))))
        if bearer is not None:
            headers.append(("Authorization", f"Bearer {bearer}"))
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HTTP_ANSWER_BYTES)
        self._request = (
            self._h11.send(h11.Request(method=method, target=target, headers=headers))
            + self._h11.send(h11.Data(data=payload))
            + self._h11.send(h11.EndOfMessage())
        )
        self._response: h11.Response | None = None
        self._body: list[bytes] = []
        self._size = 0

    def request(self) -> bytes:
        return self._request

    def receive_data(self, data: bytes) -> HttpAnswer | None:
        """Feed what was read (``b""`` at EOF); the answer once it is complete."""
        self._h11.receive_data(data)
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                if not data:  # cut short: a connection problem, worth another attempt
                    raise ConnectionError("the server closed the connection in the middle of its answer") from None
                raise AuthFailed(None, f"malformed HTTP answer: {exc}") from None
            if event is h11.NEED_DATA:
                if not data:
                    raise ConnectionError("the server closed the connection before answering")
                return None
            if isinstance(event, h11.Response):
                self._response = event
            elif isinstance(event, h11.Data):
                self._size += len(event.data)
                if self._size > MAX_HTTP_ANSWER_BYTES:
                    raise AuthFailed(None, "HTTP answer too large")
                self._body.append(bytes(event.data))
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                if self._response is None:
                    raise ConnectionError("the server closed the connection before answering")
                headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in self._response.headers]
                return HttpAnswer(self._response.status_code, headers, b"".join(self._body))


def login_exchange(target: ChatTarget, user: str, password: str) -> HttpExchange:
    return HttpExchange("POST", LOGIN_PATH, target.host_header, {"username": user, "password": password})


def ticket_exchange(target: ChatTarget, token: str) -> HttpExchange:
    return HttpExchange("POST", TICKET_PATH, target.host_header, bearer=token)


def access_token(answer: HttpAnswer) -> str:
    """The token of a ``/auth/login`` answer, or ``AuthFailed``."""
    return _field(answer, "access_token", "login refused")


def ticket(answer: HttpAnswer) -> str:
    """The ticket of a ``/auth/ticket`` answer, or ``AuthFailed``."""
    return _field(answer, "ticket", "ticket refused")


def _field(answer: HttpAnswer, name: str, what: str) -> str:
    if answer.status != 200:
        raise AuthFailed(answer.status, f"{what}: HTTP {answer.status}: {answer.error_message()}")
    payload = answer.json()
    value = payload.get(name) if isinstance(payload, dict) else None
    if not isinstance(value, str) or not value:
        raise AuthFailed(None, f"{what}: the answer has no {name}")
    return value


__all__: Sequence[str] = [
    "AuthFailed",
    "Backoff",
    "ChatState",
    "ChatTarget",
    "Formatter",
    "HttpExchange",
    "RoomLog",
    "chat_target",
    "parse_input",
    "retryable",
    "send_outcome",
    "should_reconnect",
    "url_credential",
]
