"""What the chat says to the other nodes over the bus, and how it is encoded (the bus carries bytes).

Eleven kinds of event, as compact JSON (one object per bus message):

* ``Posted``: a stored message (room, id, user, text, ts) and the node that stored it;
  a membership event (kicked, banned, …) is one too, with its kind and target added
  (``e``, ``g``): it travels, is ordered and is repaired from the store as a message is;
  so is an edit or a deletion, with its kind and the id of the message it changes (``e``,
  ``a``), an edit with its new text;
* ``Heads``: a node's heartbeat, the newest id it stored in each room it wrote
  to lately, so a node that missed a room's last message finds the gap
  without waiting for the next one, and who is present on it in each room;
* ``Presence``: a user appeared in a room on a node, or left it there;
* ``Stopped``: a user's ``not_before`` stamp set on a node (logout, password
  change), so the others close that user's connections now rather than at their
  next store poll (``accounts.stops``: the poll remains the path that cannot be missed);
* ``Notice``: a frame for every connection of one user, wherever it is (an
  invitation, a direct room opened): a hint, like all of the bus, never a door
  (the doors are in the store, so a lost notice costs a prompt, not access).
* ``Marked``: a user's read marker in a room moved forward on a node: the others
  tell that user's connections and remember it (a lost one costs a stale badge:
  the marker itself is in the store);
* ``Typing``: a user is typing in a room: each node tells the room's other users
  there (not stored, not repaired: a lost one is a missing hint).
* ``RoomDeleted``: the server API removed a room from the store: each node takes its
  connections out of it and drops what it kept of the room (``rawws.chat.removal``);
* ``Disconnected``: the server API disconnected a user: each node closes that user's
  connections (``rawws.chat.removal``);
* ``Chunk``: a chunk appended to a streamed message (``rawws.chat.stream_relay``): each
  node tells the room's members there; one lost is a gap in its ``seq``, which the
  node fills from the store (the stream's text so far is stored with every chunk).
* ``Commands``: what a user sent with ``POST /send`` to a node that does not hold the
  session named (``rawws.transports``): the node that does runs them as the session's
  own, if the session is there and is that user's; else they are dropped (the client's
  acknowledgements time out, and it opens a session where it is).

``decode_event`` checks every field's type and bounds: anything else is ``None``
(the caller counts it and logs once), never a delivery. It only ever sees what the
bus's seal opened (``rawws.bus.seal``: signed by a node of this cluster, and fresh),
so the ``node`` an event names is a node's own word, not a stranger's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from rawws.chat.wire import MAX_ID, MAX_ROOM_CHARS, MAX_TEXT_CHARS
from rawws.store.base import CHANGE_EVENTS, MEMBER_EVENTS, SAY, StoredMessage

FORMAT_VERSION = 1
MAX_USER_CHARS = 64
MAX_HEADS = 10_000  # rooms in one heartbeat


@dataclass(frozen=True, slots=True)
class Posted:
    node: str
    message: StoredMessage


@dataclass(frozen=True, slots=True)
class Heads:
    node: str
    newest: dict[str, int]  # room → newest id this node stored
    present: dict[str, list[str]] = field(
        default_factory=dict
    )  # room → users on this node


@dataclass(frozen=True, slots=True)
class Presence:
    """A user's first connection on ``node`` joined ``room`` (or its last one left)."""

    node: str
    room: str
    user: str
    joined: bool


@dataclass(frozen=True, slots=True)
class Stopped:
    """``user``'s (its name's key) tokens issued at or before ``not_before`` are stopped."""

    node: str
    user: str
    not_before: float
    disabled: bool


@dataclass(frozen=True, slots=True)
class Notice:
    """``text`` (a server frame) for every connection of ``user``: sent by ``node``."""

    node: str
    user: str
    text: str


@dataclass(frozen=True, slots=True)
class Marked:
    """``user``'s read marker in ``room`` moved forward to ``last_read`` on ``node``."""

    node: str
    room: str
    user: str
    last_read: int


@dataclass(frozen=True, slots=True)
class Typing:
    """``user`` is typing in ``room`` (let through ``node``'s rate limit)."""

    node: str
    room: str
    user: str


@dataclass(frozen=True, slots=True)
class RoomDeleted:
    """``room`` was removed from the store by ``by`` (an API key's name) on ``node``."""

    node: str
    room: str
    by: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    """Every connection of ``user`` is to be closed, on every node (the server API's call)."""

    node: str
    user: str


@dataclass(frozen=True, slots=True)
class Chunk:
    """``text``, the ``seq``-th chunk (from 1) of ``user``'s open ``stream`` in ``room``.

    No chunk is empty and a stream holds at most the wire's text limit, so ``seq`` and
    ``text`` are both bounded by ``MAX_TEXT_CHARS``."""

    node: str
    room: str
    stream: str
    seq: int
    user: str
    text: str


@dataclass(frozen=True, slots=True)
class Commands:
    """``texts`` (chat commands) for ``user``'s session ``session``, sent by ``node``."""

    node: str
    session: str
    user: str
    texts: tuple[str, ...]


MAX_STREAM_ID_CHARS = 32  # a stream's id (``streams.id``)
MAX_SESSION_ID_CHARS = 64  # a session's id (``rawws.transports``)
MAX_FORWARDED_COMMANDS = 32  # as one ``POST /send`` carries at most
MAX_FORWARDED_CHARS = 64 * 1024  # each, as a frame
MAX_NOTICE_CHARS = 1024  # an invitation or a direct room's notice is far shorter

BusEvent = (
    Posted
    | Heads
    | Presence
    | Stopped
    | Notice
    | Marked
    | Typing
    | RoomDeleted
    | Disconnected
    | Chunk
    | Commands
)


def encode_event(event: BusEvent) -> bytes:
    if isinstance(event, Posted):
        m = event.message
        body: dict[str, object] = {
            "v": FORMAT_VERSION,
            "k": "m",
            "n": event.node,
            "r": m.room,
            "i": m.id,
            "u": m.user,
            "t": m.text,
            "s": m.ts,
        }
        if m.about is not None:  # an edit or a deletion
            body["e"], body["a"] = m.kind, m.about
        elif m.kind != SAY:
            body["e"], body["g"] = m.kind, m.target
        if m.app:  # published through the server API: ``u`` is the key's name
            body["o"] = 1
        if m.stream is not None:
            body["x"] = m.stream
    elif isinstance(event, Heads):
        body = {
            "v": FORMAT_VERSION,
            "k": "h",
            "n": event.node,
            "h": event.newest,
            "p": event.present,
        }
    elif isinstance(event, Stopped):
        body = {
            "v": FORMAT_VERSION,
            "k": "x",
            "n": event.node,
            "u": event.user,
            "b": event.not_before,
            "d": event.disabled,
        }
    elif isinstance(event, Commands):
        body = {"v": FORMAT_VERSION, "k": "s", "n": event.node, "u": event.user}
        body |= {"i": event.session, "t": list(event.texts)}
    elif isinstance(event, Notice):
        body = {
            "v": FORMAT_VERSION,
            "k": "u",
            "n": event.node,
            "u": event.user,
            "t": event.text,
        }
    elif isinstance(event, Marked):
        body = {"v": FORMAT_VERSION, "k": "r", "n": event.node, "r": event.room}
        body |= {"u": event.user, "i": event.last_read}
    elif isinstance(event, Typing):
        body = {"v": FORMAT_VERSION, "k": "y", "n": event.node, "r": event.room}
        body["u"] = event.user
    elif isinstance(event, RoomDeleted):
        body = {"v": FORMAT_VERSION, "k": "d", "n": event.node, "r": event.room}
        body["u"] = event.by
    elif isinstance(event, Disconnected):
        body = {"v": FORMAT_VERSION, "k": "q", "n": event.node, "u": event.user}
    elif isinstance(event, Chunk):
        body = {"v": FORMAT_VERSION, "k": "c", "n": event.node, "r": event.room}
        body |= {"x": event.stream, "i": event.seq, "u": event.user, "t": event.text}
    else:
        body = {
            "v": FORMAT_VERSION,
            "k": "p",
            "n": event.node,
            "r": event.room,
            "u": event.user,
            "j": event.joined,
        }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _is_id(value: object) -> bool:
    return type(value) is int and 1 <= value <= MAX_ID


def _is_room(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_ROOM_CHARS


def _is_stream(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_STREAM_ID_CHARS


def _is_user(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_USER_CHARS


def decode_event(data: bytes | str) -> BusEvent | None:
    """The event in ``data``, or ``None`` when it is not one of ours (wrong JSON, types or bounds)."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if (
        not isinstance(body, dict)
        or body.get("v") != FORMAT_VERSION
        or not isinstance(body.get("n"), str)
    ):
        return None
    node = body["n"]
    kind = body.get("k")
    if kind == "m":
        room, message_id, user, text, ts = (
            body.get(key) for key in ("r", "i", "u", "t", "s")
        )
        if not (
            _is_room(room)
            and _is_id(message_id)
            and isinstance(user, str)
            and isinstance(text, str)
        ):
            return None
        if type(ts) not in (int, float):
            return None
        assert (
            isinstance(room, str)
            and isinstance(message_id, int)
            and isinstance(user, str)
        )
        assert isinstance(text, str) and isinstance(ts, int | float)
        kind, target, about = body.get("e", SAY), body.get("g"), body.get("a")
        if kind in CHANGE_EVENTS:
            if not _is_id(about):
                return None
            target = None
        elif kind != SAY and not (kind in MEMBER_EVENTS and _is_user(target)):
            return None
        else:
            about = None
        assert isinstance(kind, str) and (target is None or isinstance(target, str))
        assert about is None or isinstance(about, int)
        app, stream = body.get("o", 0), body.get("x")
        if app not in (0, 1) or not (stream is None or _is_stream(stream)):
            return None
        assert stream is None or isinstance(stream, str)
        return Posted(
            node,
            StoredMessage(
                room,
                message_id,
                user,
                text,
                float(ts),
                kind,
                target if kind != SAY else None,
                about,
                app=app == 1,
                stream=stream,
            ),
        )
    if kind == "h":
        heads = body.get("h")
        if not isinstance(heads, dict) or len(heads) > MAX_HEADS:
            return None
        if not all(_is_room(room) and _is_id(newest) for room, newest in heads.items()):
            return None
        present = body.get("p", {})
        if not isinstance(present, dict) or len(present) > MAX_HEADS:
            return None
        for room, users in present.items():
            if (
                not _is_room(room)
                or not isinstance(users, list)
                or not all(_is_user(u) for u in users)
            ):
                return None
        return Heads(node, heads, present)
    if kind == "p":
        room, user, joined = body.get("r"), body.get("u"), body.get("j")
        if not (_is_room(room) and _is_user(user) and type(joined) is bool):
            return None
        assert (
            isinstance(room, str) and isinstance(user, str) and isinstance(joined, bool)
        )
        return Presence(node, room, user, joined)
    if kind == "x":
        user, not_before, disabled = body.get("u"), body.get("b"), body.get("d")
        if not (_is_user(user) and type(disabled) is bool):
            return None
        if type(not_before) not in (int, float):
            return None
        assert isinstance(user, str) and isinstance(not_before, int | float)
        if not math.isfinite(not_before) or not_before < 0:
            return None
        assert isinstance(disabled, bool)
        return Stopped(node, user, float(not_before), disabled)
    if kind == "u":
        user, text = body.get("u"), body.get("t")
        if not (
            _is_user(user) and isinstance(text, str) and len(text) <= MAX_NOTICE_CHARS
        ):
            return None
        assert isinstance(user, str)
        return Notice(node, user, text)
    if kind == "d":
        room, by = body.get("r"), body.get("u")
        if not (_is_room(room) and _is_user(by)) or len(body) != 5:
            return None
        assert isinstance(room, str) and isinstance(by, str)
        return RoomDeleted(node, room, by)
    if kind == "q":
        user = body.get("u")
        if not _is_user(user) or len(body) != 4:
            return None
        assert isinstance(user, str)
        return Disconnected(node, user)
    if kind == "c":
        return _chunk(node, body)
    if kind == "s":
        return _commands(node, body)
    if kind in ("r", "y"):
        room, user, read = body.get("r"), body.get("u"), body.get("i")
        if not (_is_room(room) and _is_user(user)):
            return None
        assert isinstance(room, str) and isinstance(user, str)
        if kind == "y":
            return Typing(node, room, user)
        if not _is_id(read):
            return None
        assert isinstance(read, int)
        return Marked(node, room, user, read)
    return None


def _chunk(node: str, body: dict[str, object]) -> Chunk | None:
    room, stream, seq = body.get("r"), body.get("x"), body.get("i")
    user, text = body.get("u"), body.get("t")
    if not (_is_room(room) and _is_stream(stream) and _is_user(user)):
        return None
    if type(seq) is not int or not 1 <= seq <= MAX_TEXT_CHARS:
        return None
    if not isinstance(text, str) or not 0 < len(text) <= MAX_TEXT_CHARS:
        return None
    assert isinstance(room, str) and isinstance(stream, str) and isinstance(user, str)
    return Chunk(node, room, stream, seq, user, text)


def _commands(node: str, body: dict[str, object]) -> Commands | None:
    session, user, texts = body.get("i"), body.get("u"), body.get("t")
    if not (isinstance(session, str) and 0 < len(session) <= MAX_SESSION_ID_CHARS):
        return None
    if not (_is_user(user) and isinstance(texts, list) and texts):
        return None
    if len(texts) > MAX_FORWARDED_COMMANDS or not all(
        isinstance(text, str) and len(text) <= MAX_FORWARDED_CHARS for text in texts
    ):
        return None
    assert isinstance(user, str)
    return Commands(node, session, user, tuple(texts))
