"""Streamed messages over the API: ``stream_open``, ``stream_append``, ``stream_finish`` (scope publish).

An application (an AI model's tokens, say) opens a stream in a room, appends its
text chunk by chunk, then finishes it. Each chunk is stored first (the stream's
text so far, ``rawws.store.streams``), then told live to the room's members on
every node (``rawws.chat.stream_relay``); the finish stores the whole text as one
message of the room and hands it to the feed, which delivers it here and on the
bus in the room's order like any message. A stream is its opener's: another key
gets the same 404 as for a stream that does not exist, and learns nothing of it.

A stream nobody appends to for ``idle_s`` (60 s) is finished by the server with
what it has (``IdleStreams``, on every node: the finish is idempotent, so two nodes
finishing the same stream store it once); one that never had a chunk is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rawws.apps.calls import ApiCall, ApiError, bad_field, no_such_room
from rawws.apps.keys import PUBLISH
from rawws.apps.routes import ApiRoutes
from rawws.chat.feed import RoomFeed
from rawws.chat.stream_relay import StreamRelay
from rawws.chat.wire import MAX_TEXT_CHARS
from rawws.store.outage import is_outage
from rawws.store.sql import SqlStore
from rawws.store.streams import NoSuchStream, StreamFinished, StreamTooLong

if TYPE_CHECKING:
    from rawws.apps.setup import ApiContext

log = logging.getLogger("rawws.api")

IDLE_S = 60.0  # a stream with no append this long is finished by the server
SWEEP_EVERY_S = 5.0  # how often each node looks for idle streams
SWEEP_BATCH = 100  # idle streams finished per look (the rest at the next one)
FINISHED_KEPT_S = (
    24 * 3600.0
)  # a finished stream's id answers a repeated finish this long
MAX_STREAM_ID_CHARS = 32
FORGET_EVERY = (
    12  # looks between two deletions of the streams finished long ago (a write)
)


def no_such_stream(stream: str) -> ApiError:
    """The one answer for a stream that does not exist and for another key's."""
    return ApiError(404, "no_such_stream", f"no stream {stream!r}")


class StreamCalls:
    """The three calls, over the store and this node's chat."""

    def __init__(self, store: SqlStore, feed: RoomFeed, relay: StreamRelay) -> None:
        self.store = store
        self.feed = feed
        self.relay = relay

    async def open(self, call: ApiCall) -> dict[str, Any]:
        room = call.room()
        call.body.done()
        stream = await self.store.open_stream(room, call.key.name, call.now)
        if stream is None:  # no such room, or a direct one: the same answer
            raise no_such_room(room)
        return {"room": room, "stream": stream}

    async def append(self, call: ApiCall) -> dict[str, Any]:
        stream = call.body.text("stream", max_chars=MAX_STREAM_ID_CHARS)
        text = call.body.text("text")
        call.body.done()
        if not text:
            raise bad_field("text", "must not be empty")
        if "\x00" in text:  # PostgreSQL text cannot hold NUL
            raise bad_field("text", "must not hold NUL characters")
        try:
            state = await self.store.append_stream(
                stream, call.key.name, text, MAX_TEXT_CHARS, call.now
            )
        except NoSuchStream:
            raise no_such_stream(stream) from None
        except StreamFinished:
            raise ApiError(
                409, "stream_finished", f"stream {stream!r} is finished"
            ) from None
        except StreamTooLong:
            raise ApiError(
                413,
                "too_long",
                f"a stream holds at most {MAX_TEXT_CHARS} characters",
            ) from None
        self.relay.chunk_here(state.room, stream, state.chunks, state.user, text)
        return {"stream": stream, "seq": state.chunks}

    async def finish(self, call: ApiCall) -> dict[str, Any]:
        stream = call.body.text("stream", max_chars=MAX_STREAM_ID_CHARS)
        call.body.done()
        try:
            finished = await self.store.finish_stream(stream, call.key.name, call.now)
        except NoSuchStream:
            raise no_such_stream(stream) from None
        if finished.message is not None:
            # A repeat hands it on again: each node's sequencer drops an id it delivered,
            # so a node that died between the commit and the bus leaves nothing undelivered.
            self.feed.stored_here(finished.message)
        return {"room": finished.room, "stream": stream, "id": finished.id}


class IdleStreams:
    """Finishes, every ``every_s``, the streams with no append for ``idle_s``; forgets, once a
    day old, the streams finished (on any node: whichever looks first stores it, once)."""

    def __init__(
        self,
        store: SqlStore,
        feed: RoomFeed,
        idle_s: float = IDLE_S,
        every_s: float = SWEEP_EVERY_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.feed = feed
        self.idle_s = idle_s
        self.every_s = every_s
        self.clock = clock
        self.finished = 0  # idle streams this node finished
        self.looks = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_outage(exc):  # an outage is the store's to log
                    log.warning(
                        "finishing idle streams failed; trying again", exc_info=True
                    )

    async def sweep(self) -> int:
        """Finish the idle streams due now: how many this call finished."""
        now = self.clock()
        done = 0
        for state in await self.store.idle_streams(now - self.idle_s, SWEEP_BATCH):
            if state.chunks == 0:  # opened, never written: nothing to store
                await self.store.discard_stream(state.id)
                continue
            try:
                finished = await self.store.finish_stream(state.id, None, now)
            except NoSuchStream:
                continue  # its room is gone
            if finished.first and finished.message is not None:
                self.feed.stored_here(finished.message)
                done += 1
        self.finished += done
        if self.looks % FORGET_EVERY == 0:
            await self.store.forget_finished_streams(now - FINISHED_KEPT_S)
        self.looks += 1
        return done

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def add_calls(routes: ApiRoutes, context: ApiContext) -> None:
    """The stream calls, and this node's look for idle streams (stopped before the store closes)."""
    chat = context.app.chat
    calls = StreamCalls(context.app.store, chat.feed, chat.streams)
    routes.add("stream_open", PUBLISH, calls.open)
    routes.add("stream_append", PUBLISH, calls.append)
    routes.add("stream_finish", PUBLISH, calls.finish)
    idle = IdleStreams(context.app.store, chat.feed)
    idle.start()
    # Shutdown runs its hooks in order: this one before the chat's, which closes the store.
    context.server.on_shutdown.insert(0, idle.close)
