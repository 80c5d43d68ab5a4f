"""One connection's chat state: the ``Member`` the hub delivers to (``rawws.chat.hub``).

It lives beside the hub it serves, so a delivery never climbs back into the
service: the hub calls ``deliver``, which either queues the frame on the peer or,
while that room's replay is running, notes the id for the replay to read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from rawws.accounts.room_rights import RoomRights
from rawws.accounts.tokens import Identity
from rawws.chat.peer import Peer
from rawws.chat.wire import error

if TYPE_CHECKING:
    from rawws.chat.wire import Say


class CatchUp:
    """A replay in progress in one room: what arrived live meanwhile."""

    __slots__ = ("newest", "frames")

    def __init__(self) -> None:
        self.newest = 0  # the highest message id published while replaying: the replay reads up to it
        self.frames: list[
            tuple[str, bytes]
        ] = []  # other frames (presence), sent after the replay


class ChatMember:
    """One connection's chat state: its rooms, the last id it got in each, replays in progress."""

    __slots__ = (
        "peer",
        "user",
        "rate_key",
        "last_ids",
        "floors",
        "muted",
        "catching_up",
        "entering",
        "tasks",
        "dropping",
        "feeds",
        "rights",
    )

    def __init__(self, peer: Peer, user: str, rate_key: int = 0) -> None:
        self.peer = peer
        self.user = user
        self.rate_key = rate_key  # not the peer: the rate limiter outlives it
        # A session over SSE or long-polling (``rawws.transports``) lends its own dict: its
        # position, the ``id:`` of every event it sends, is read from it.
        lent = getattr(peer, "last_ids", None)
        self.last_ids: dict[str, int] = lent if isinstance(lent, dict) else {}
        # Per room: the member's since_id; nothing at or before it is sent to them.
        self.floors: dict[str, int] = {}
        # Per room where this user is muted: until when (seconds since the epoch). Set from
        # the stored membership at join and by mute events as the room's sequence applies them.
        self.muted: dict[str, float] = {}
        self.catching_up: dict[str, CatchUp] = {}
        # Per public room whose membership this connection's join is still reading (or
        # storing, a first join): the ``say`` frames sent meanwhile, stored once it is
        # (after the ``joined`` event), in the order they came.
        self.entering: dict[str, list[Say]] = {}
        # ``tasks`` and ``feeds`` are sets kept as dicts (keys only): an empty dict costs 64 bytes,
        # an empty set 216, and a room of 100,000 members holds 100,000 of each.
        self.tasks: dict[asyncio.Task[None], None] = {}
        self.dropping = False  # over the frame rate: frames are dropped unread until a token is back
        # The rooms joined whose stored kind is ``feed``: read here, published by an application
        # only. Learnt from the join's stored membership (``Doors.place``), so ``say`` reads nothing.
        self.feeds: dict[str, None] = {}
        # What the credential's room rights allow (an outside token's ``rawws_rooms``): None, no limits.
        identity = getattr(peer, "identity", None)
        self.rights: RoomRights | None = (
            identity.rooms if isinstance(identity, Identity) else None
        )

    def deliver(
        self, room: str, message_id: int | None, text: str, frame: bytes
    ) -> None:
        catch_up = self.catching_up.get(room)
        if catch_up is not None:
            if message_id is None:
                catch_up.frames.append(
                    (text, frame)
                )  # after the `joined` answer and the replay
            else:
                catch_up.newest = max(
                    catch_up.newest, message_id
                )  # the replay will read it from the store
            return
        if message_id is not None:
            if message_id <= self.last_ids.get(room, 0):
                return  # already delivered by a replay
            self.last_ids[room] = message_id
        self.peer.send_shared(text, frame)

    def forget(self, room: str) -> None:
        """Out of ``room``: nothing of it is kept (its replay, if running, stops)."""
        self.last_ids.pop(room, None)
        self.floors.pop(room, None)
        self.muted.pop(room, None)
        self.catching_up.pop(room, None)
        self.feeds.pop(room, None)

    def send(self, text: str) -> None:
        self.peer.send_nowait(text)

    async def make_room(self) -> None:
        """Before queueing more of a replay: wait while the outbox is half full, so a replay
        never trips the slow-consumer bound by itself."""
        peer = self.peer
        while peer.open and peer.backed_up:
            await asyncio.sleep(0)  # the flush scheduled by the last send runs
            await peer.wait_writable()

    def refuse_held(
        self, room: str, held: list[Say] | None, code: str, message: str
    ) -> None:
        """The public membership could not be had: each ``say`` held for it is answered, not stored."""
        if held is None:
            return
        self.stop_entering(room, held)
        for say in held:
            self.send(error(code, message, say.ref))

    def stop_entering(self, room: str, held: list[Say]) -> None:
        """``held`` no longer waits for ``room``'s membership (if it is still what waits there)."""
        if self.entering.get(room) is held:
            del self.entering[room]
            if not self.entering:
                self.entering = {}  # see ``_task_done``

    def caught_up(self, room: str) -> None:
        """``room``'s replay is done: what arrived meanwhile is no longer held for it."""
        del self.catching_up[room]
        if not self.catching_up:
            self.catching_up = {}  # see ``_task_done``

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks[task] = None
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        tasks = self.tasks
        tasks.pop(task, None)
        if not tasks:
            # A dict emptied keeps the table its keys had (160 bytes for a member's first task,
            # the join's, held for the connection's life); a new one has none.
            self.tasks = {}
