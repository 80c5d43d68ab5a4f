"""What the server needs from a database, as a ``typing.Protocol``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    password_hash: str
    created_at: datetime
    disabled: bool = (
        False  # refused at login, refresh, ticket and upgrade (`rawws admin disable`)
    )
    admin: bool = False  # a server admin (`rawws admin grant`, never over the network)
    not_before: float = 0.0  # tokens issued at or before it (epoch seconds) are refused


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as stored: ``id`` is its place in its room, increasing without gaps."""

    room: str
    id: int
    user: str
    text: str
    ts: float
    # 'say' for a message; a membership event otherwise (``MEMBER_EVENTS``): it takes its
    # id in the same sequence, so every node applies it in order with the messages around
    # it. ``user`` is then who did it, ``target`` whom it was done to, ``text`` its detail
    # (a role's name, a mute's end as seconds since the epoch, or "").
    kind: str = "say"
    target: str | None = None
    # An ``edited`` or ``deleted`` event: the id of the message it changes (``CHANGE_EVENTS``).
    about: int | None = None
    # A message's current state (``Edits.change_message``): when it was last edited; who
    # deleted it and when (its text is then "": a deletion removes the text from the store).
    edited_at: float | None = None
    deleted_by: str | None = None
    deleted_at: float | None = None
    # Published by an application through the server API (``user`` is its key's name), and
    # the stream a finished streamed message came from.
    app: bool = False
    stream: str | None = None


SAY = "say"
INVITED, KICKED, BANNED_EVENT, UNBANNED = "invited", "kicked", "banned", "unbanned"
ROLE_CHANGED, MUTED, UNMUTED = "role", "muted", "unmuted"
#: A public room's membership begins with a ``joined`` event (its first ``join``) and a
#: membership of any kind may end with ``left`` (``leave`` with ``for_good``).
JOINED, LEFT = "joined", "left"
MEMBER_EVENTS = (
    INVITED,
    KICKED,
    BANNED_EVENT,
    UNBANNED,
    ROLE_CHANGED,
    MUTED,
    UNMUTED,
    JOINED,
    LEFT,
)
#: A message edited or deleted: an event in the room's sequence (its own id), ``about`` the
#: message it changes; its stored row keeps no text (the message's row holds the current one).
EDITED, DELETED = "edited", "deleted"
CHANGE_EVENTS = (EDITED, DELETED)
#: The events after which their target is no longer in the room (their connections leave it).
REMOVING_EVENTS = (KICKED, BANNED_EVENT, LEFT)


@dataclass(frozen=True, slots=True)
class MemberEvent:
    """A membership change to store in the room's sequence (``Rooms.apply_member_event``).

    ``role`` is the target's stored role afterwards (None: no row: not a member of a private
    room, nobody special in a public one); ``demote`` names a previous owner who becomes a
    moderator (ownership handed over); ``muted_until`` is the target's mute afterwards.
    ``expect`` is what the command was judged on: (user, their stored role or None) pairs
    that must still hold when the event is stored, else ``MembershipChanged`` and nothing
    is stored (two commands judged at once: the second is judged again on the first's result).
    """

    room: str
    kind: str
    actor: str
    target: str
    detail: str
    ts: float
    role: str | None
    muted_until: float | None = None
    demote: str | None = None
    expect: tuple[tuple[str, str | None], ...] = ()


class MessageNotFound(Exception):
    """An edit or deletion names no message of its room that is still there (an event's id,
    another room's, one never stored, or one deleted already): nothing is stored."""


class NotYours(Exception):
    """An edit of someone else's message, or a deletion of it by a plain member: nothing is stored."""


class MembershipChanged(Exception):
    """A membership event's ``expect`` no longer held when it was to be stored: judge it again."""


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message accepted from a client, not yet numbered."""

    room: str
    user: str
    text: str
    ts: float
    app: bool = False  # published through the server API: ``user`` is the key's name
    stream: str | None = None  # the whole text of this finished stream


PUBLIC, PRIVATE, DIRECT = "public", "private", "direct"  # a room's kind
FEED = "feed"  # a public room whose members only read: only the server API publishes
OWNER, MODERATOR, MEMBER = "owner", "moderator", "member"  # a member's role
#: A stored "role" that is no membership: the user may not join (nor be invited) until unbanned.
BANNED = "banned"
ROLES = (OWNER, MODERATOR, MEMBER)  # what ``role`` may give


@dataclass(frozen=True, slots=True)
class Membership:
    """One user's stored place in a room: their ``role``, and ``since_id``, the room's last
    message id when they became a member (they are sent only messages after it)."""

    room: str
    kind: str
    role: str
    since_id: int
    muted_until: float | None = None  # seconds since the epoch; None: not muted
    last_read: int = (
        0  # the stored read marker (in force: the larger of it and since_id)
    )

    @property
    def read_upto(self) -> int:
        """The read marker in force: what they said they read, and never before they joined."""
        return max(self.last_read, self.since_id)


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """A room's kind and owner (username key; None for a public room made by a join)."""

    room: str
    kind: str
    owner: str | None


@dataclass(frozen=True, slots=True)
class RoomView:
    """A room as one user may see it: ``role`` is None where they are not a member (public rooms);
    ``user`` is the other user of a direct room (as registered), None for other kinds."""

    room: str
    kind: str
    role: str | None
    user: str | None = None
    # Where ``role`` is set (a member): their read marker in force, and how many messages
    # of others came after it (``Reads.unread``'s count).
    last_read: int | None = None
    unread: int | None = None


ROTATED, REUSED, INVALID = "rotated", "reused", "invalid"


@dataclass(frozen=True, slots=True)
class Rotation:
    """What presenting a refresh token did: ``ROTATED`` (a successor was stored), ``REUSED``
    (it was spent already: its family is revoked now) or ``INVALID`` (unknown, expired or revoked)."""

    outcome: str
    user_id: int = 0
    username: str = ""
    family: str = ""


class Grants(Protocol):
    """Refresh tokens (by SHA-256) and spent tickets: the store side of sessions that outlive a restart."""

    async def add_refresh_token(
        self,
        token_hash: str,
        family: str,
        user_id: int,
        username: str,
        expires_at: float,
    ) -> None: ...

    async def rotate_refresh_token(
        self,
        token_hash: str,
        successor_hash: str,
        successor_expires_at: float,
        now: float,
    ) -> Rotation: ...

    async def revoke_refresh_family(self, token_hash: str) -> bool: ...

    async def revoke_user_families(
        self, user_id: int, keep_family: str | None
    ) -> int: ...

    async def spend_ticket(
        self, token_id: str, expires_at: float, now: float
    ) -> bool: ...


class Rooms(Protocol):
    """Room kinds and stored membership: what a private room's doors read, on every node alike."""

    async def create_room(
        self, room: str, kind: str, owner: str
    ) -> Membership | None: ...

    async def add_member(
        self, room: str, user: str, role: str, added_by: str
    ) -> Membership | None: ...

    async def membership(self, room: str, user: str) -> Membership | None: ...

    async def owned_rooms(self, user: str) -> int: ...

    async def room_info(self, room: str) -> RoomInfo | None: ...

    async def apply_member_event(self, event: MemberEvent) -> StoredMessage: ...

    async def join_public(
        self, room: str, user: str, ts: float
    ) -> tuple[Membership, StoredMessage | None]: ...

    async def visible_rooms(self, user: str) -> list[RoomView]: ...

    async def open_direct(self, room: str, user: str, other: str) -> Membership: ...

    async def member_roles(self, room: str) -> dict[str, str]: ...


@dataclass(frozen=True, slots=True)
class Stamp:
    """A user's stop as every node needs it: who (the name's key), since when, and disabled or not."""

    user_key: str
    not_before: float
    disabled: bool


class Stops(Protocol):
    """Account stops: the ``not_before`` stamp and the disabled flag (``rawws.store.stops``)."""

    async def stamp_not_before(self, user_id: int, at: float) -> Stamp | None: ...

    async def set_disabled(
        self, username: str, disabled: bool, at: float
    ) -> Stamp | None: ...

    async def set_admin(self, username: str, admin: bool) -> bool: ...

    async def revoke_family_and_stamp(
        self, token_hash: str, at: float
    ) -> Stamp | None: ...

    async def stamps_since(self, since: float) -> list[Stamp]: ...


class Edits(Protocol):
    """Edits and deletions of stored messages (``rawws.store.edits``)."""

    async def change_message(
        self, room: str, message_id: int, actor: str, text: str | None, ts: float
    ) -> StoredMessage: ...


class Erasure(Protocol):
    """Account erasure and the end of its quarantine (``rawws.store.erasure``)."""

    async def erase_user(
        self, username: str, by: str, ts: float
    ) -> tuple[Stamp | None, list[StoredMessage]]: ...

    async def forget_erased(self, before_ts: float) -> int: ...


class Reads(Protocol):
    """Read markers (``rawws.store.reads``): written in batches, only ever forward."""

    async def save_read_markers(self, marks: list[tuple[str, str, int]]) -> None: ...

    async def unread(self, room: str, user: str, after: int, upto: int) -> int: ...


@dataclass(frozen=True, slots=True)
class StreamState:
    """A streamed message as stored (``rawws.store.streams``): ``text`` is its ``chunks``
    appends so far; ``message_id`` is set once it is finished (its text is then the message's)."""

    id: str
    room: str
    user: str
    text: str
    chunks: int
    updated_at: float
    message_id: int | None = None


class Streams(Protocol):
    """What the chat reads of open streams: a member joining mid-stream, a node that missed a chunk."""

    async def open_streams(self, room: str) -> list[StreamState]: ...

    async def stream_state(self, stream_id: str) -> StreamState | None: ...


class Store(Grants, Rooms, Stops, Edits, Erasure, Reads, Streams, Protocol):
    async def create_user(self, username: str, password_hash: str) -> User: ...

    async def get_user(self, username: str) -> User | None: ...

    async def update_password_hash(self, user_id: int, password_hash: str) -> None: ...

    async def append_messages(self, batch: list[NewMessage]) -> list[StoredMessage]: ...

    async def messages_after(
        self, room: str, after: int, limit: int
    ) -> list[StoredMessage]: ...

    async def last_message_id(self, room: str) -> int: ...

    async def messages_before(
        self, room: str, before: int | None, limit: int
    ) -> list[StoredMessage]: ...

    async def kept_from(self, room: str) -> int: ...

    async def set_room_retention(
        self, room: str, max_age_s: float, max_messages: int
    ) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
