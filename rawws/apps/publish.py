"""``publish`` and ``publish_batch``: an application's messages into rooms, exactly once when asked.

A message is stored with ``app=True`` and the key's name as its sender, then handed to the
chat's feed (``stored_here``): delivered to this node's members and published on the bus, as
a message a user said. The room must exist, be one the key reaches, and be public, private
or a feed room; a direct room (``~…``) answers as a missing one does.

Every publish goes straight to the store (``publish_once``), not through the chat's group
commit (``MessageWriter``): the writer creates a room that is missing (a room deleted since
the check would come back), and an exactly-once publish must store its record in the
message's own transaction, which the writer's batches cannot. One path for both keeps the
two alike; an application that wants fewer commits sends a batch.

``idempotency_key`` makes a publish exactly once (``rawws.store.publishes``); a duplicate is
handed to the feed again, and every node's sequencer drops an id it delivered already, so
a node that died between its commit and the bus leaves nothing undelivered. Records older
than the window (24 h) are removed by ``PublishSweep``, a task of every node.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rawws.apps.calls import ApiCall, ApiError, Body, bad_field, no_such_room
from rawws.apps.keys import PUBLISH, ApiKey
from rawws.apps.routes import ApiRoutes
from rawws.chat.wire import MAX_TEXT_CHARS, ROOM_NAME
from rawws.store import NewMessage, SqlStore
from rawws.store.base import FEED, PRIVATE, PUBLIC
from rawws.store.outage import StoreUnavailable, is_outage
from rawws.store.publishes import (
    PUBLISH_WINDOW_S,
    IdempotencyConflict,
    NoRoom,
    Published,
)

if TYPE_CHECKING:  # setup imports this module to name it in CALLS
    from rawws.apps.setup import ApiContext

log = logging.getLogger("rawws.api")

MAX_BATCH_MESSAGES = 100
MAX_IDEMPOTENCY_KEY_CHARS = 128
IDEMPOTENCY_KEY = re.compile(rf"[\x20-\x7e]{{1,{MAX_IDEMPOTENCY_KEY_CHARS}}}")
#: The kinds of room an application may publish into (never a direct room).
PUBLISHABLE = (PUBLIC, PRIVATE, FEED)
SWEEP_INTERVAL_S = 600.0
#: A batch's message the store could not take (an outage): retry it, with its idempotency_key.
UNAVAILABLE = ApiError(503, "unavailable", "the store is unavailable: retry")


@dataclass(frozen=True, slots=True)
class Wanted:
    """One message as a call asked for it, its fields checked."""

    room: str
    text: str
    idempotency_key: str | None

    def body_hash(self) -> str:
        """SHA-256 of the canonical JSON of ``{room, text}``: what a repeat must match."""
        canonical = json.dumps(
            {"room": self.room, "text": self.text},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def read_wanted(body: Body, key: ApiKey) -> Wanted:
    """``{room, text, idempotency_key?}``: each field checked, then every other one refused."""
    room: str = body.text("room")
    if (
        ROOM_NAME.fullmatch(room) is None
    ):  # the syntax alone: it tells nothing of any room
        raise bad_field("room", "not a room name")
    if not key.reaches(room):
        raise no_such_room(room)
    text: str = body.text("text")
    if not text.strip():
        raise bad_field("text", "empty")
    if len(text) > MAX_TEXT_CHARS:
        raise ApiError(
            413, "too_long", f"text is longer than {MAX_TEXT_CHARS} characters"
        )
    if "\x00" in text:
        raise bad_field("text", "holds a NUL character")
    idempotency_key: str | None = body.text("idempotency_key", required=False)
    if (
        idempotency_key is not None
        and IDEMPOTENCY_KEY.fullmatch(idempotency_key) is None
    ):
        raise bad_field(
            "idempotency_key",
            f"must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters",
        )
    body.done()
    return Wanted(room, text, idempotency_key)


class Publisher:
    """Stores what a call wanted and hands it to the chat's feed."""

    def __init__(self, context: ApiContext) -> None:
        self.store: SqlStore = context.app.store
        self.health = context.app.health
        self.feed = context.app.chat.feed

    async def publish(self, key: ApiKey, wanted: Wanted, now: float) -> dict[str, Any]:
        info = await self.health.call(
            "reading a room", self.store.room_info(wanted.room)
        )
        if info is None or info.kind not in PUBLISHABLE:
            raise no_such_room(wanted.room)
        item = NewMessage(wanted.room, key.name, wanted.text, now, app=True)
        try:
            published: Published = await self.health.call(
                "publishing",
                self.store.publish_once(
                    key.id, wanted.idempotency_key, wanted.body_hash(), item
                ),
            )
        except NoRoom:
            raise no_such_room(wanted.room) from None
        except IdempotencyConflict:
            raise ApiError(
                409,
                "idempotency_conflict",
                "this idempotency_key was used with another body",
            ) from None
        message = published.message
        if message is not None and message.deleted_at is None:
            self.feed.stored_here(message)
        return {
            "room": published.room,
            "id": published.id,
            "duplicate": published.duplicate,
        }


class PublishSweep:
    """Every node removes the idempotency records older than the window, now and then."""

    def __init__(
        self,
        store: SqlStore,
        window_s: float = PUBLISH_WINDOW_S,
        interval_s: float = SWEEP_INTERVAL_S,
    ) -> None:
        self.store = store
        self.window_s = window_s
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def sweep_once(self, now: float | None = None) -> int:
        return await self.store.forget_publishes(
            (time.time() if now is None else now) - self.window_s
        )

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception as exc:  # an outage: the next round catches up
                if not is_outage(exc):  # an outage is the store's to log
                    log.warning(
                        "sweeping old idempotency records failed: %s",
                        type(exc).__name__,
                    )
            await asyncio.sleep(self.interval_s)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def add_calls(routes: ApiRoutes, context: ApiContext) -> None:
    publisher = Publisher(context)

    async def publish(call: ApiCall) -> dict[str, Any]:
        wanted = read_wanted(call.body, call.key)
        return await publisher.publish(call.key, wanted, call.now)

    async def publish_batch(call: ApiCall) -> dict[str, Any]:
        """Each message on its own: one refused (its ``error``) leaves the others stored."""
        items = call.body.items("messages", max_items=MAX_BATCH_MESSAGES)
        call.body.done()
        results: list[dict[str, Any]] = []
        for index, value in enumerate(items):
            try:
                if not isinstance(value, dict):
                    raise bad_field(f"messages[{index}]", "must be an object")
                wanted = read_wanted(Body(value), call.key)
                results.append(await publisher.publish(call.key, wanted, call.now))
            except ApiError as error:
                results.append(error.payload())
            except StoreUnavailable:  # this one was not stored; those before it were
                results.append(UNAVAILABLE.payload())
        return {"results": results}

    routes.add("publish", PUBLISH, publish)
    routes.add("publish_batch", PUBLISH, publish_batch)
    sweep = PublishSweep(context.app.store)
    sweep.start()
    # before the store closes: the shutdown hooks run in order, and the chat's close the store
    context.server.on_shutdown.insert(0, sweep.close)
