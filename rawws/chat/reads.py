"""Read markers: ``read {room, id}``, the ``last_read``/``unread`` of ``joined`` and ``rooms``.

A user's marker in a room only moves forward. This node keeps the highest marker it
knows per (room, user) (``known``: read from the store at a join, set by a ``read``
here, heard from another node), so a ``read`` at or below it costs a dict lookup and
nothing else: no frame, no write, no bus message.

A marker that moves forward is told at once to every connection of the user, here
(``read``) and on the other nodes (a ``Marked`` bus event: they tell theirs and
remember it). It is stored later: pending markers, one per (room, user), are written
together in one transaction about once a second (``flush_s``) and when the node
closes, with an UPDATE that never moves a stored marker back (``Reads.save_read_markers``),
whatever order nodes flush in. A thousand connections reading a thousand times in a
second are one write. A failed write keeps its markers pending for the next flush; at
most ``max_pending`` wait (the oldest are dropped past it: a lost marker is a stale
unread count, never a lost message).

Until they are stored, ``joined`` and ``rooms`` answer with the larger of the stored
marker and this node's, so a user never sees their own marker go back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable

from rawws.chat import wire as chat
from rawws.chat import wire_reads as wr
from rawws.chat.codec import Marked
from rawws.chat.feed import RoomFeed
from rawws.chat.member import ChatMember
from rawws.chat.peer import Peer
from rawws.errors import ChatError
from rawws.store import Store
from rawws.store.base import Membership, RoomView
from rawws.store.names import username_key
from rawws.store.outage import StoreHealth, StoreUnavailable

log = logging.getLogger("rawws.chat")

FLUSH_S = 1.0  # pending markers are written together this often
MAX_KNOWN = (
    65_536  # (room, user) markers this node remembers; the least recent go first
)
MAX_PENDING = 100_000  # markers waiting for a write the store keeps refusing


class ReadMarkers:
    """This node's read markers: what it knows, what it has yet to store, and the writer."""

    def __init__(
        self,
        feed: RoomFeed,
        health: StoreHealth,
        peers: Callable[[str], list[Peer]],
        node: str,
        flush_s: float = FLUSH_S,
    ) -> None:
        self.store: Store = feed.store  # the node's store
        self.health = health
        self.peers = peers  # a user's connections on this node, by the name's key
        self.feed = feed
        feed.on_marked = self.heard
        self.node = node
        self.flush_s = flush_s
        self.max_known = MAX_KNOWN
        self.max_pending = MAX_PENDING
        self.known: OrderedDict[tuple[str, str], int] = OrderedDict()
        self.pending: dict[
            tuple[str, str], int
        ] = {}  # (room, user key) → marker to store
        self.failed_flushes = 0
        self._task: asyncio.Task[None] | None = None

    def _forward(self, room: str, user: str, marker: int) -> bool:
        """Note ``marker``; True when it is past every marker this node knew of (room, user)."""
        key = (room, username_key(user))
        if self.known.get(key, 0) >= marker:
            return False
        self.known[key] = marker
        self.known.move_to_end(key)
        if len(self.known) > self.max_known:
            self.known.popitem(last=False)
        return True

    def marker(self, room: str, user: str) -> int:
        """The highest marker of (room, user) this node knows, stored or not (0: none)."""
        key = (room, username_key(user))
        return max(self.known.get(key, 0), self.pending.get(key, 0))

    # -- read ------------------------------------------------------------------------------

    def read(self, member: ChatMember, command: wr.Read) -> None:
        """``read {room, id}`` of a joined connection: forward only, never past what it was sent."""
        room, marker = command.room, command.id
        delivered = member.last_ids.get(room, 0)
        if marker > delivered:
            raise ChatError(
                chat.BAD_FIELD,
                f"id {marker} is past the newest id you were sent in {room} ({delivered})",
                command.ref,
            )
        if not self._forward(room, member.user, marker):
            return
        key = (room, username_key(member.user))
        self.pending[key] = max(self.pending.get(key, 0), marker)
        self._bound()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._tell_here(member.user, wr.read_moved(room, marker))
        self.feed.tell(Marked(self.node, room, member.user, marker))

    def heard(self, event: Marked) -> None:
        """Another node moved a marker: this node's connections of the user hear it, once."""
        if self._forward(event.room, event.user, event.last_read):
            self._tell_here(event.user, wr.read_moved(event.room, event.last_read))

    def _tell_here(self, user: str, text: str) -> None:
        """To each of the user's connections on this node, found by name (not by a scan)."""
        for peer in self.peers(user):
            peer.send_nowait(text)

    # -- joined and rooms ------------------------------------------------------------------

    async def joined(
        self, room: str, user: str, found: Membership | None, last_id: int
    ) -> tuple[int, int]:
        """The ``last_read`` and ``unread`` of a ``joined``: the stored marker (``found``, read
        at this join) or this node's if larger, and the count after it up to ``last_id``."""
        stored = found.read_upto if found is not None else 0
        self._forward(room, user, stored)
        marker = max(stored, self.marker(room, user))
        if marker >= last_id:
            return marker, 0
        unread = await self.health.call(
            "joining", self.store.unread(room, user, marker, last_id)
        )
        return marker, unread

    async def refine(self, user: str, views: list[RoomView]) -> list[RoomView]:
        """``rooms``' views with this node's markers where they are past the stored ones: one
        count per such room (only rooms whose marker moved here or was heard within about a
        flush), the rest as the one ``visible_rooms`` query counted them."""
        refined = []
        for view in views:
            if view.last_read is not None:
                marker = self.marker(view.room, user)
                if marker > view.last_read:
                    unread = await self.health.call(
                        "rooms", self.store.unread(view.room, user, marker, chat.MAX_ID)
                    )
                    view = RoomView(
                        view.room, view.kind, view.role, view.user, marker, unread
                    )
            refined.append(view)
        return refined

    # -- the writer ------------------------------------------------------------------------

    async def _run(self) -> None:
        while self.pending:
            await asyncio.sleep(self.flush_s)
            await self.flush()

    async def flush(self) -> None:
        """Store every pending marker in one write; on failure they wait for the next."""
        if not self.pending:
            return
        batch, self.pending = self.pending, {}
        marks = [(room, key, marker) for (room, key), marker in batch.items()]
        try:
            await self.health.call(
                "saving read markers", self.store.save_read_markers(marks)
            )
        except BaseException as exc:
            self._restore(batch)
            if not isinstance(exc, Exception):
                raise  # cancelled: the markers wait for the closing flush
            self.failed_flushes += 1
            if not isinstance(exc, StoreUnavailable):
                log.exception("storing %d read marker(s) failed", len(marks))
            return
        self.failed_flushes = 0

    def _restore(self, batch: dict[tuple[str, str], int]) -> None:
        """A failed batch goes back in front of what came meanwhile (the oldest first)."""
        for key, marker in self.pending.items():
            batch[key] = max(batch.get(key, 0), marker)
        self.pending = batch
        self._bound()

    def _bound(self) -> None:
        while len(self.pending) > self.max_pending:
            del self.pending[next(iter(self.pending))]

    async def close(self) -> None:
        """Before the store closes: what is pending is written (once: a failure is logged)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()
