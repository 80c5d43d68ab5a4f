"""This node's live delivery: every stored message, whether this node or another
stored it, goes to the hub in id order, exactly once per room.

A ``RoomSequencer`` per room with local members decides; this class does the
I/O around it: it publishes this node's commits on the bus, reads gaps from
the store, catches every room up when the bus comes back after an outage, and
sends a heartbeat with the newest ids this node stored, so that a node that
missed the last message of a quiet room finds out within one heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from rawws.bus.base import Bus, LocalBus
from rawws.chat import wire as chat
from rawws.chat.codec import (
    BusEvent,
    Chunk,
    Commands,
    Disconnected,
    Heads,
    Marked,
    Notice,
    Posted,
    Presence,
    RoomDeleted,
    Stopped,
    Typing,
    decode_event,
    encode_event,
)
from rawws.chat.presence import DEFAULT_PRESENCE_TTL_S, Change, ClusterPresence
from rawws.chat.sequencer import DEFAULT_HOLD_LIMIT, RoomSequencer
from rawws.config import DEFAULT_BUS_HEARTBEAT_S
from rawws.core.counters import BusCounters
from rawws.store import Store, StoredMessage
from rawws.store.base import SAY, Stamp

log = logging.getLogger("rawws.chat")

FETCH_PAGE = 500  # messages per gap query
STORE_TIMEOUT_S = (
    10.0  # a gap query that takes longer is abandoned and tried again later
)
DEFAULT_HEARTBEAT_S = DEFAULT_BUS_HEARTBEAT_S  # rawws.config's
MAX_HEAD_ROOMS = (
    1000  # rooms in one heartbeat: the ones this node wrote to most recently
)

Deliver = Callable[[str, str, int], object]  # (room, text, id): the hub's publish
Apply = Callable[
    [StoredMessage], object
]  # an event (membership, edit, deletion), in its place: the hub applies it
Announce = Callable[[Change], object]  # a user appeared in / left a room, cluster-wide
Notify = Callable[[str, str], object]  # (user, frame): to that user's connections here


class RoomFeed:
    def __init__(
        self,
        store: Store,
        deliver: Deliver,
        bus: Bus | None = None,
        node: str = "local",
        *,
        hold_limit: int = DEFAULT_HOLD_LIMIT,
        heartbeat_s: float = DEFAULT_HEARTBEAT_S,
        presence: ClusterPresence | None = None,
        announce: Announce | None = None,
        local_presence: Callable[[], dict[str, list[str]]] | None = None,
        bus_counters: BusCounters | None = None,
        notify: Notify | None = None,
        apply: Apply | None = None,
    ) -> None:
        self.store = store
        # Events (kind not 'say': membership, edits, deletions) go here instead of ``deliver``,
        # in id order with the messages: a kicked user is out of the room before the next
        # message goes out; an edit reaches only those who were sent its message.
        self._apply = apply
        self.bus_counters = bus_counters if bus_counters is not None else BusCounters()
        self.garbage = 0  # bus messages that were not ours
        #: Another node set a user's stamp (``accounts.stops.StopBook.note``, set by the app).
        self.on_stopped: Callable[[Stamp], None] | None = None
        #: Another node moved a read marker / let a ``typing`` through (``rawws.chat.reads``, ``typing_``).
        self.on_marked: Callable[[Marked], None] | None = None
        self.on_typing: Callable[[Typing], None] | None = None
        #: Another node removed a room / disconnected a user (``rawws.chat.removal``).
        self.on_removal: Callable[[RoomDeleted | Disconnected], None] | None = None
        #: Streamed messages (``rawws.chat.stream_relay``): another node's chunk; a finished
        #: stream's message handed to the hub here; a room left with no member here.
        self.on_chunk: Callable[[Chunk], None] | None = None
        self.on_streamed: Callable[[StoredMessage], None] | None = None
        self.on_room_closed: Callable[[str], None] | None = None
        #: Commands another node took for a session held here (``rawws.transports``).
        self.on_commands: Callable[[Commands], None] | None = None
        self.bus: Bus = bus or LocalBus()
        self.node = node
        self._deliver = deliver
        self.hold_limit = hold_limit
        self.heartbeat_s = heartbeat_s
        self._rooms: dict[str, RoomSequencer[StoredMessage]] = {}
        self._fetching: dict[str, asyncio.Task[None]] = {}
        self._written: dict[
            str, int
        ] = {}  # room → newest id this node stored (most recent last)
        self._heartbeat: asyncio.Task[None] | None = None
        self.fetched = 0  # messages read from the store to fill gaps
        self.presence = presence or ClusterPresence(
            lambda room: (), DEFAULT_PRESENCE_TTL_S
        )
        self._announce: Announce = announce or (lambda change: None)
        self._local_presence = local_presence or dict
        self._notify: Notify = notify or (lambda user, text: None)

    # -- rooms with local members ---------------------------------------------------------

    def open_room(self, room: str) -> None:
        if room not in self._rooms:
            self._rooms[room] = RoomSequencer(self.hold_limit)

    def close_room(self, room: str) -> None:
        self._rooms.pop(room, None)
        if self.on_room_closed is not None:
            self.on_room_closed(room)
        task = self._fetching.pop(room, None)
        if task is not None:
            task.cancel()

    def start_room(self, room: str, last_id: int) -> None:
        """The room's last id as read when a member joined: live delivery continues after it."""
        sequencer = self._rooms.get(room)
        if sequencer is not None and not sequencer.started:
            self._send(room, sequencer.start(last_id))
            self._repair(room)

    def delivered_upto(self, room: str) -> int:
        """The highest id of ``room`` handed to the hub (0: none yet)."""
        sequencer = self._rooms.get(room)
        if sequencer is None or sequencer.next_id is None:
            return 0
        return sequencer.next_id - 1

    # -- messages in ------------------------------------------------------------------------

    def stored_here(self, message: StoredMessage) -> None:
        """This node committed ``message``: tell the other nodes, deliver it here."""
        self._written.pop(message.room, None)
        self._written[message.room] = message.id
        if len(self._written) > MAX_HEAD_ROOMS:
            del self._written[next(iter(self._written))]
        self.bus.publish(encode_event(Posted(self.node, message)))
        self.bus_counters.on_publish()
        self._offer(message)

    def receive_bytes(self, data: bytes) -> None:
        """A message on the bus: one of ours (``rawws.chat.codec``), or garbage, counted and logged once."""
        event = decode_event(data)
        if event is None:
            self.garbage += 1
            if self.garbage == 1:
                log.warning(
                    "ignoring a bus message that is not ours (further ones are counted, not logged)"
                )
            return
        self.receive(event)

    def receive(self, event: BusEvent) -> None:
        """An event from another node."""
        if event.node == self.node:
            return
        if isinstance(event, Posted):
            self.bus_counters.on_receive()
            self._offer(event.message)
            return
        if isinstance(event, Stopped):
            if self.on_stopped is not None:
                self.on_stopped(Stamp(event.user, event.not_before, event.disabled))
            return
        if isinstance(event, Notice):
            self._notify(event.user, event.text)
            return
        if isinstance(event, Marked):
            if self.on_marked is not None:
                self.on_marked(event)
            return
        if isinstance(event, Typing):
            if self.on_typing is not None:
                self.on_typing(event)
            return
        if isinstance(event, RoomDeleted | Disconnected):
            if self.on_removal is not None:
                self.on_removal(event)
            return
        if isinstance(event, Chunk):
            if self.on_chunk is not None:
                self.on_chunk(event)
            return
        if isinstance(event, Commands):
            if self.on_commands is not None:
                self.on_commands(event)
            return
        now = time.monotonic()
        if isinstance(event, Presence):
            self._tell(
                self.presence.event(
                    event.node, event.room, event.user, event.joined, now
                )
            )
            return
        present = {room: frozenset(users) for room, users in event.present.items()}
        self._tell(self.presence.snapshot(event.node, present, now))
        for room, newest in event.newest.items():
            sequencer = self._rooms.get(room)
            if sequencer is not None:
                sequencer.note_newest(newest)
                self._repair(room)

    def _tell(self, changes: list[Change]) -> None:
        for change in changes:
            self._announce(change)

    def stopped_here(self, stamp: Stamp) -> None:
        """This node set ``stamp``: tell the other nodes (they would read it at their next poll)."""
        self.bus.publish(
            encode_event(
                Stopped(self.node, stamp.user_key, stamp.not_before, stamp.disabled)
            )
        )

    def here(self, room: str, user: str, joined: bool) -> None:
        """``user``'s first connection on this node joined ``room`` (or its last one left)."""
        self.bus.publish(encode_event(Presence(self.node, room, user, joined)))

    def forward_commands(self, session: str, user: str, texts: list[str]) -> None:
        """``texts`` for ``user``'s session ``session``, which another node holds."""
        self.bus.publish(encode_event(Commands(self.node, session, user, tuple(texts))))

    def tell_user(self, user: str, text: str) -> None:
        """``text`` for ``user``'s connections on the other nodes (this node's are told by the caller)."""
        self.bus.publish(encode_event(Notice(self.node, user, text)))

    def forget_room(self, room: str) -> None:
        """``room`` was removed from the store: its sequencer and its head go, so a room made
        later under that name is numbered from 1 here as in the store."""
        self.close_room(room)
        self._written.pop(room, None)

    def tell(self, event: Marked | Typing | RoomDeleted | Disconnected | Chunk) -> None:
        """For the other nodes: a hint (a read marker moved, someone typing), sent once, never
        repaired; a room removed or a user disconnected by the server API; or a stream's
        chunk, which a node that misses it reads from the store."""
        self.bus.publish(encode_event(event))

    def _offer(self, message: StoredMessage) -> None:
        sequencer = self._rooms.get(message.room)
        if sequencer is None:
            return  # no local member
        self._send(message.room, sequencer.receive(message.id, message))
        self._repair(message.room)

    def _send(self, room: str, messages: list[StoredMessage]) -> None:
        for message in messages:
            if message.kind != SAY and self._apply is not None:
                self._apply(message)
            else:
                self._deliver(room, chat.message(message), message.id)
                if message.stream is not None and self.on_streamed is not None:
                    self.on_streamed(message)

    # -- gaps -----------------------------------------------------------------------------

    def _repair(self, room: str) -> None:
        sequencer = self._rooms.get(room)
        if sequencer is None or not sequencer.wants_fetch or room in self._fetching:
            return
        task = asyncio.get_running_loop().create_task(self._fetch(room, sequencer))
        self._fetching[room] = task
        task.add_done_callback(lambda done: self._fetch_done(room, done))

    def _fetch_done(self, room: str, task: asyncio.Task[None]) -> None:
        if self._fetching.get(room) is task:
            del self._fetching[room]

    async def _fetch(self, room: str, sequencer: RoomSequencer[StoredMessage]) -> None:
        try:
            while sequencer.wants_fetch and self._rooms.get(room) is sequencer:
                async with asyncio.timeout(STORE_TIMEOUT_S):
                    page = await self.store.messages_after(
                        room, sequencer.fetch_after, FETCH_PAGE
                    )
                if self._rooms.get(room) is not sequencer or not page:
                    return
                self.fetched += len(page)
                self.bus_counters.on_gap_repaired(len(page))
                self._send(room, sequencer.fetched([(m.id, m) for m in page]))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "reading a gap of room=%s from the store failed; trying again on the next event",
                room,
            )

    async def catch_up(self) -> None:
        """After a bus outage: every room with local members reads what it missed."""
        for room, sequencer in list(self._rooms.items()):
            try:
                async with asyncio.timeout(STORE_TIMEOUT_S):
                    newest = await self.store.last_message_id(room)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("catching up room=%s failed", room)
                continue
            sequencer.note_newest(newest)
            self._repair(room)
        self._beat()  # the others may have missed this node's messages too

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self.bus.start(self.receive_bytes, self.catch_up)
        if not isinstance(self.bus, LocalBus):
            self._heartbeat = asyncio.get_running_loop().create_task(self._beats())

    def _beat(self) -> None:
        self.bus.publish(
            encode_event(Heads(self.node, dict(self._written), self._local_presence()))
        )

    async def _beats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            self._beat()
            self._tell(self.presence.expire(time.monotonic()))

    async def close(self) -> None:
        if not isinstance(self.bus, LocalBus):
            self.bus.publish(
                encode_event(Heads(self.node, {}, {}))
            )  # goodbye: nobody is here any more
        tasks = [
            t for t in (self._heartbeat, *self._fetching.values()) if t is not None
        ]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.bus.close()
