"""Streamed messages, live: each chunk to the room's members on every node, and what a joiner missed.

An application appends text to an open stream through the server API
(``rawws.apps.streams``); the node that stored the chunk calls ``chunk_here``, which
tells this node's members of the room and, through a ``Chunk`` bus event, every other
node, which does the same (``heard``). The ``stream`` frame is built once per chunk
per node and the same bytes go to every member (``Hub``'s shared frame).

Each node keeps the open streams of the rooms that have members here (their text so
far and ``seq``), from the chunks it saw:

* A chunk is applied in ``seq`` order: one at or below what is known is a repeat and
  dropped; one past a gap (the bus lost one, or the node started tracking the stream
  mid-way) is held, and the stream is read from the store, where the text so far is
  stored with each chunk: every chunk seen before that read began is in what it
  returns. The members then get one ``whole`` frame (everything so far), then the
  chunks after it.
* A member who joins (``went_live``, once the join's replay is out) waits for a read of
  the room's open streams that *began after* its replay: a stream finished before the
  read is not open in it (and its message was in the replay, or comes live after it),
  and every chunk stored before the read is in it. Meanwhile the member is sent no
  chunk; this node's copy takes them. The member then gets one ``whole`` frame per open
  stream, from the copy brought up to the store's, and every chunk after: none twice,
  none missed. Joins while a read is running wait for the next one (two reads per room
  at most, whatever the number of joins).
* The finished stream's ``message`` (with ``stream``), handed to the hub by the feed in
  the room's order, ends the node's copy; a chunk of it that comes later (the bus does
  not order one node's events with another's) is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

from rawws.chat.codec import Chunk
from rawws.chat.feed import RoomFeed
from rawws.chat.hub import Hub, Member, text_frame
from rawws.chat.member import ChatMember
from rawws.chat.wire_reads import dumps
from rawws.store.base import StoredMessage, Streams, StreamState
from rawws.store.outage import is_outage

log = logging.getLogger("rawws.chat")

MAX_STREAMS = (
    10_000  # open streams this node keeps a copy of (the least recently updated go)
)
MAX_FINISHED = (
    4096  # finished streams remembered, so that a late chunk cannot revive one
)
READ_TIMEOUT_S = 10.0  # a store read that takes longer is abandoned


def stream_frame(
    room: str, stream: str, seq: int, text: str, user: str, *, whole: bool = False
) -> str:
    """A ``stream`` frame: the ``seq``-th chunk, or (``whole``) all ``seq`` chunks so far."""
    payload: dict[str, object] = {
        "type": "stream",
        "room": room,
        "stream": stream,
        "seq": seq,
        "text": text,
        "user": user,
        "app": True,
    }
    if whole:
        payload["whole"] = True
    return dumps(payload)


class Copy:
    """This node's copy of one open stream: ``text`` is its chunks 1 to ``seq``; ``ahead``
    holds chunks past a gap until the store fills it."""

    __slots__ = ("id", "room", "user", "text", "seq", "ahead", "born", "reading")

    def __init__(self, stream: str, room: str, user: str, born: int) -> None:
        self.id = stream
        self.room = room
        self.user = user
        self.text = ""
        self.seq = 0
        self.ahead: dict[int, str] = {}
        self.born = born  # when this node began the copy (``StreamRelay.clock``)
        self.reading = False  # a read of the stream is running

    def drain(self) -> list[tuple[int, str]]:
        """Take the chunks held that now follow on: (seq, text) of each, in order."""
        taken = []
        while self.seq + 1 in self.ahead:
            self.seq += 1
            text = self.ahead.pop(self.seq)
            self.text += text
            taken.append((self.seq, text))
        return taken

    def catch_up(self, stored: StreamState) -> bool:
        """The store is further on: take its text (then the chunks held past it); True if so."""
        if stored.chunks <= self.seq:
            return False
        self.text, self.seq = stored.text, stored.chunks
        for seq in [seq for seq in self.ahead if seq <= self.seq]:
            del self.ahead[seq]
        self.drain()
        return True

    def whole(self) -> str:
        return stream_frame(
            self.room, self.id, self.seq, self.text, self.user, whole=True
        )


class StreamRelay:
    """This node's part of streamed messages: chunks to the room's members here and on the
    bus, the copies of the open streams of its rooms, and the ``whole`` frames of a join."""

    def __init__(self, hub: Hub, feed: RoomFeed, store: Streams, node: str) -> None:
        self.hub = hub
        self.feed = feed
        self.store = store
        self.node = node
        feed.on_chunk = self.heard
        feed.on_streamed = self.streamed
        feed.on_room_closed = self.room_closed
        self.copies: OrderedDict[str, Copy] = (
            OrderedDict()
        )  # least recently updated first
        self.by_room: dict[str, dict[str, None]] = {}
        self.finished: OrderedDict[str, None] = OrderedDict()
        self.clock = itertools.count(1)
        # Members whose ``whole`` frames wait for the room's next read, and those of the
        # read running (with the clock when it began): neither is sent a chunk meanwhile.
        self.waiting: dict[str, dict[Member, None]] = {}
        self.reading: dict[str, tuple[dict[Member, None], int]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.repairs = 0  # streams read again after a gap
        self.deliveries = 0  # stream frames offered to members

    # -- chunks in --------------------------------------------------------------------

    def chunk_here(
        self, room: str, stream: str, seq: int, user: str, text: str
    ) -> None:
        """This node stored chunk ``seq`` of ``stream``: its members here, then every other node."""
        chunk = Chunk(self.node, room, stream, seq, user, text)
        self.heard(chunk)
        self.feed.tell(chunk)

    def heard(self, chunk: Chunk) -> None:
        """A chunk (this node's or another's): applied to the copy in order, told to the members."""
        if chunk.stream in self.finished:
            return  # its message was delivered: a late chunk
        if not self.hub.occupied(chunk.room):
            return  # nobody here to tell; a member who joins reads the store
        copy = self.copies.get(chunk.stream)
        if copy is None:
            copy = self._track(chunk.stream, chunk.room, chunk.user)
        else:
            self.copies.move_to_end(chunk.stream)
        if chunk.seq <= copy.seq or chunk.seq in copy.ahead:
            return  # a repeat
        copy.ahead[chunk.seq] = chunk.text
        taken = copy.drain()
        for seq, text in taken:
            self._tell(
                copy.room, stream_frame(copy.room, copy.id, seq, text, copy.user)
            )
        if copy.ahead:
            self._repair(copy)

    def streamed(self, message: StoredMessage) -> None:
        """The finished stream's message went to the members here: the copy is done."""
        if message.stream is not None:
            self._forget(message.stream)

    def room_closed(self, room: str) -> None:
        """No member of ``room`` is left here: its copies go (a member who comes reads the store)."""
        for stream in list(self.by_room.get(room, ())):
            self.copies.pop(stream, None)
        self.by_room.pop(room, None)
        self.waiting.pop(room, None)
        reading = self.reading.get(room)
        if (
            reading is not None
        ):  # its read still runs: it must not keep the gone members alive
            reading[0].clear()

    # -- a member joins ---------------------------------------------------------------

    def went_live(self, member: Member, room: str) -> None:
        """``member``'s join of ``room`` is replayed: its ``whole`` frames, once the room's
        open streams are read (a read that begins now), then every chunk after them."""
        self.waiting.setdefault(room, {})[member] = None
        if room not in self.reading:
            self._read_room(room)

    def _read_room(self, room: str) -> None:
        members = self.waiting.pop(room, None)
        if not members:
            return
        self.reading[room] = (members, next(self.clock))
        self._spawn(self._load(room))

    async def _load(self, room: str) -> None:
        stored: list[StreamState] | None = None
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                stored = await self.store.open_streams(room)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_outage(exc):  # an outage is the store's to log (two lines in all)
                log.warning(
                    "reading the open streams of room=%s failed: joiners get this node's copy",
                    room,
                    exc_info=True,
                )
        self._loaded(room, stored)

    def _loaded(self, room: str, stored: list[StreamState] | None) -> None:
        """The read is back: copies brought up to it, then each waiting member's frames."""
        members, began = self.reading[room]
        if stored is not None and self.hub.occupied(room):
            still_open = set()
            for state in stored:
                if state.id in self.finished:
                    continue  # its message came meanwhile
                still_open.add(state.id)
                copy = self.copies.get(state.id) or self._track(
                    state.id, room, state.user
                )
                if copy.catch_up(state) and copy.seq:  # the members here fell behind
                    self._tell(room, copy.whole())
            for stream in list(self.by_room.get(room, ())):
                copy = self.copies[stream]
                if stream not in still_open and copy.born < began:
                    self._forget(stream)  # finished before the read began
        del self.reading[room]
        wholes = [
            copy.whole()
            for stream in self.by_room.get(room, ())
            if (copy := self.copies[stream]).seq
        ]
        frames = [(text, text_frame(text)) for text in wholes]
        for member in members:
            if member in self.waiting.get(room, ()) or not self._live(member, room):
                continue  # gone, or joined again (that join's read sends its frames)
            for text, frame in frames:
                member.deliver(room, None, text, frame)
                self.deliveries += 1
        self._read_room(room)  # the joins that came while this read ran

    # -- the copies -------------------------------------------------------------------

    def _track(self, stream: str, room: str, user: str) -> Copy:
        copy = self.copies[stream] = Copy(stream, room, user, next(self.clock))
        self.by_room.setdefault(room, {})[stream] = None
        while len(self.copies) > MAX_STREAMS:
            oldest = next(iter(self.copies))
            self._drop(oldest)
        return copy

    def _drop(self, stream: str) -> None:
        copy = self.copies.pop(stream, None)
        if copy is None:
            return
        streams = self.by_room.get(copy.room)
        if streams is not None:
            streams.pop(stream, None)
            if not streams:
                del self.by_room[copy.room]

    def _forget(self, stream: str) -> None:
        """A finished stream: its copy goes, and its id is remembered (a late chunk is dropped)."""
        self._drop(stream)
        self.finished[stream] = None
        self.finished.move_to_end(stream)
        while len(self.finished) > MAX_FINISHED:
            self.finished.popitem(last=False)

    def _repair(self, copy: Copy) -> None:
        """A gap in the copy: read the stream from the store (one read at a time per stream)."""
        if copy.reading:
            return
        copy.reading = True
        self.repairs += 1
        self._spawn(self._reread(copy))

    async def _reread(self, copy: Copy) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                state = await self.store.stream_state(copy.id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            copy.reading = False  # the next chunk past the gap tries again
            if not is_outage(exc):  # an outage is the store's to log
                log.warning("reading stream=%s failed", copy.id, exc_info=True)
            return
        copy.reading = False
        if self.copies.get(copy.id) is not copy:
            return  # finished or dropped meanwhile
        if state is None or state.message_id is not None:
            self._forget(copy.id)  # its message is on its way (or was delivered)
            return
        if copy.catch_up(state):
            self._tell(copy.room, copy.whole())
        if copy.ahead:  # chunks past a gap that came during the read
            self._repair(copy)

    # -- fan-out ----------------------------------------------------------------------

    def _live(self, member: Member, room: str) -> bool:
        """``member`` is sent this room's chunks: it is in the room, its replay is out and its
        ``whole`` frames are sent."""
        if not self.hub.is_member(member, room):
            return False
        if isinstance(member, ChatMember) and room in member.catching_up:
            return False
        if member in self.waiting.get(room, ()):
            return False
        reading = self.reading.get(room)
        return reading is None or member not in reading[0]

    def _tell(self, room: str, text: str) -> None:
        """``text`` to the room's live members here, framed once."""
        members = [m for m in self.hub.members(room) if self._live(m, room)]
        if not members:
            return
        frame = text_frame(text)
        for member in members:
            member.deliver(room, None, text, frame)
        self.deliveries += len(members)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self) -> None:
        """Before the store closes: no read of it still running."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
