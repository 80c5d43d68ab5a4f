"""The chat endpoint `/ws`: commands from `rawws.chat.wire`, rooms from `rawws.chat.hub`, history in the store.

Ordering guarantees, and how they are kept:

* A ``say`` is acknowledged only after it is stored; stores are batched (group
  commit) by ``MessageWriter``, and the batch is delivered in id order.
* A ``join`` puts the connection in the room *before* reading history. While
  the replay (``since``) runs, live messages of that room are not queued, only
  their highest id is noted; the replay reads the store until it has passed
  both the room's last id at join time and that highest id, then live delivery
  resumes, skipping ids already delivered. A message is published only after it
  is stored, so it is delivered exactly once whether it was committed before,
  during or after the replay: no gap, no duplicate, and no unbounded buffer.
* A public room's ``join`` reads the user's membership, and stores it (a ``joined``
  event) the first time; a ``say`` sent meanwhile waits for it (``ChatMember.entering``),
  so no message is stored by a non-member or before the join that let it in.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Coroutine
from typing import Any

from rawws.bus.base import Bus
from rawws.chat import wire as chat
from rawws.chat.access import authorize, needs_membership
from rawws.chat.doors import Doors, IsAdmin
from rawws.chat.edits import Editor, unseen
from rawws.chat.feed import DEFAULT_HEARTBEAT_S, RoomFeed
from rawws.chat.history import answer_history
from rawws.chat.hooked import ChatHooks
from rawws.chat.hub import Hub
from rawws.chat.limits import CLOSE_TASKS_TIMEOUT_S, RATE_LIMITED_MESSAGE, ChatLimits
from rawws.chat.member import CatchUp, ChatMember
from rawws.chat.moderation import Moderator, never_admin, refuse_muted
from rawws.chat.peer import Peer
from rawws.chat.presence import DEFAULT_PRESENCE_TTL_S, ClusterPresence, announcer
from rawws.chat.presence_grace import end_graces
from rawws.chat.read_only import held_say_allowed
from rawws.chat.reads import ReadMarkers
from rawws.chat.replay import SharedReads
from rawws.chat.retention import ahead, gap
from rawws.chat.room_retention import RoomRetention
from rawws.chat.stops import ConnectionStops
from rawws.chat.stream_relay import StreamRelay
from rawws.chat.typing_relay import TypingRelay
from rawws.chat.wire import (
    Create,
    Dm,
    HistoryRequest,
    Invite,
    Join,
    Leave,
    RoomsRequest,
    Say,
    Who,
)
from rawws.chat.wire_edits import MessageChange
from rawws.chat.wire_moderation import Moderation
from rawws.chat.wire_reads import Read, Typing
from rawws.chat.wire_retention import RetentionChange
from rawws.chat.writer import MessageWriter
from rawws.core.counters import Counters
from rawws.core.ratelimit import RateLimiter
from rawws.errors import ChatError
from rawws.store import NewMessage, Store, StoredMessage
from rawws.store.base import SAY, Membership
from rawws.store.outage import StoreHealth, StoreUnavailable

log = logging.getLogger("rawws.chat")


class ChatHandler:
    """The `/ws` endpoint's ``WebSocketHandler``."""

    hooks: ChatHooks | None = None  # the app's join and say hooks, set by the wiring

    def __init__(
        self,
        store: Store,
        hub: Hub | None = None,
        bus: Bus | None = None,
        node: str = "local",
        heartbeat_s: float = DEFAULT_HEARTBEAT_S,
        presence_ttl_s: float = DEFAULT_PRESENCE_TTL_S,
        presence_grace_s: float = 0.0,
        health: StoreHealth | None = None,
        limits: ChatLimits | None = None,
        counters: Counters | None = None,
        is_admin: IsAdmin = never_admin,
    ) -> None:
        self.store = store
        self.limits = limits = limits if limits is not None else ChatLimits()
        self.hub = hub or Hub(presence_grace_s)
        self.counters = counters if counters is not None else Counters()
        self.health = health if health is not None else StoreHealth()
        self.writer = MessageWriter(
            store, self.health, limits.max_batch_messages, self.counters
        )
        # Every stored message reaches the hub through the feed: in id order, once,
        # whether this node stored it or another one did (through the bus).
        self.presence = ClusterPresence(self.hub.users, presence_ttl_s)
        self.feed = RoomFeed(
            store,
            self._publish_message,
            bus,
            node,
            heartbeat_s=heartbeat_s,
            presence=self.presence,
            announce=announcer(self.hub),
            local_presence=self.hub.presence,
            bus_counters=self.counters.bus if bus is not None else None,
            notify=self._notify_here,
            apply=self._apply_event,
        )
        # replay queries shared by members who rejoin at once
        self.reads = SharedReads(store)
        self._members: dict[Peer, ChatMember] = {}
        self.doors = Doors(
            store, self.health, self._notify, self.feed.stored_here, is_admin
        )
        self.moderator = Moderator(self.doors, self.hub, self._leave)
        self.retention = RoomRetention(store, self.health, self.doors, limits)
        self.editor = Editor(store, self.health, self.hub, self.feed.stored_here)
        #: By user, so a stopped account's connections are closed (``StopBook`` calls ``stops.stop``).
        self.stops = ConnectionStops(self.counters)
        self.markers = ReadMarkers(self.feed, self.health, self.stops.peers, node)
        self.doors.refine = self.markers.refine  # ``rooms``: markers not yet stored
        self.typists = TypingRelay(self.hub, self.feed, node)
        self.streams = StreamRelay(self.hub, self.feed, store, node)
        self._rate = RateLimiter(
            limits.message_burst, limits.message_burst / limits.messages_per_s
        )
        self._rate_keys = itertools.count(1)
        # every member's replays and queries, until done
        self._tasks: set[asyncio.Task[None]] = set()
        self._grace: asyncio.Task[None] | None = None  # ends the lingering (Hub.expire)

    def _publish_message(self, room: str, text: str, message_id: int) -> None:
        self.counters.fanout_deliveries += self.hub.publish(room, text, message_id)

    def _apply_event(self, event: StoredMessage) -> None:
        """An event in its place in the room: an edit or deletion, or a membership event."""
        if event.about is not None:
            self.counters.fanout_deliveries += self.editor.deliver(event)
        else:
            self.counters.fanout_deliveries += self.moderator.apply(event)

    async def start(self) -> None:
        """Connect the bus (``BusUnavailable`` when it cannot be reached)."""
        await self.feed.start()
        if self.hub.grace_s > 0:
            self._grace = asyncio.create_task(
                end_graces(self.hub, self.feed, self.presence)
            )

    # -- WebSocketHandler -----------------------------------------------------------

    def on_open(self, peer: Peer) -> None:
        assert peer.user is not None, "/ws is authenticated"
        member = ChatMember(peer, peer.user, next(self._rate_keys))
        self._members[peer] = member
        self.stops.add(peer, member.user)
        limits = chat.limits(
            self.limits.max_rooms_per_connection,
            self.limits.messages_per_s,
            self.limits.message_burst,
        )
        member.send(chat.welcome(member.user, [chat.DEFAULT_ROOM], limits))

    def on_message(self, peer: Peer, data: str | bytes) -> None:
        member = self._members[peer]
        ref = None
        # Every frame takes a token, malformed ones too. Over the rate a frame is
        # dropped without being parsed, and one `rate_limited` (no ref: the frame
        # was not read) tells the client, once per stretch of dropping: a flood of
        # frames costs neither a parse nor an answer each.
        if self._rate.acquire(member.rate_key, time.monotonic()) > 0:
            if not member.dropping:
                member.dropping = True
                member.send(chat.error(chat.RATE_LIMITED, RATE_LIMITED_MESSAGE))
            return
        member.dropping = False
        try:
            command = chat.parse_command(data)
            ref = getattr(command, "ref", None)
            self._dispatch(member, command)
        except ChatError as error:
            member.send(
                chat.error(
                    error.code,
                    error.message,
                    error.ref if error.ref is not None else ref,
                )
            )

    def on_close(self, peer: Peer, code: int) -> None:
        member = self._members.pop(peer, None)
        if member is None:
            return
        self.stops.remove(peer, member.user)
        for task in member.tasks:
            task.cancel()
        # closed, not left: a reload within the grace is no leave
        now = time.monotonic()
        for room in list(member.last_ids):
            self._leave(member, room, now)

    def rejoin(self, peer: Peer, room: str, since: int) -> None:
        """Join ``room`` after ``since`` again (a session resumed at its position, ``rawws.transports``)."""
        member = self._members[peer]
        try:  # unrated (a position names at most a connection's rooms); the ref names a refusal's room
            self._dispatch(member, Join(room, since, f"join:{room}"))
        except ChatError as error:
            member.last_ids.pop(room, None)  # not in its position any more
            member.send(chat.error(error.code, error.message, error.ref))

    # -- commands ---------------------------------------------------------------------

    def _dispatch(self, member: ChatMember, command: chat.Command) -> None:
        """Authorize (``rawws.chat.access``, the one place that decides), then run the command."""
        authorize(command, lambda room: self.hub.is_member(member, room), member)
        if isinstance(command, Say):
            held = member.entering.get(command.room) if member.entering else None
            if held is not None:  # the membership is being read or stored: after it
                held.append(command)
            # ``member.muted`` is empty unless a mute holds somewhere: no clock read, no call
            elif not (
                member.muted
                and refuse_muted(member, command.room, command.ref, time.time())
            ):
                self._say(member, command)
        elif isinstance(command, Join):
            if needs_membership(command):  # a private room: its door is stored
                self._spawn(member, self._join_stored(member, command))
            else:  # at once, as a pipelined leave expects; a ban is read in _catch_up
                self._join(member, command)
        elif isinstance(command, Leave) and command.for_good:
            self._spawn(member, self.moderator.leave_for_good(member, command))
        elif isinstance(command, Leave):
            self._leave(member, command.room)
            member.send(chat.left(command.room))
        elif isinstance(command, HistoryRequest):
            self._spawn(
                member, answer_history(self.store, self.health, member, command)
            )
        elif isinstance(command, Who):
            users = self.presence.users(command.room)
            # stored roles to tell: read, not on the hot path
            if chat.has_door(command.room):
                self._spawn(member, self.doors.who(member, command.room, users))
            else:
                member.send(chat.members(command.room, users))
        elif isinstance(command, (Create, Invite, RoomsRequest, Dm)):
            self._spawn(member, self.doors.run(member, command))
        elif isinstance(command, Moderation):
            self._spawn(member, self.moderator.run(member, command))
        elif isinstance(command, RetentionChange):
            self._spawn(member, self.retention.run(member, command))
        elif isinstance(command, MessageChange) and not self.editor.muted(
            member, command
        ):
            self._spawn(member, self.editor.run(member, command))
        elif isinstance(command, Read):
            self.markers.read(member, command)
        elif isinstance(command, Typing):
            self.typists.typing(member, command)

    def _notify(self, user: str, text: str) -> None:
        """``text`` to every connection of ``user``: here, and on the other nodes through the bus."""
        self._notify_here(user, text)
        self.feed.tell_user(user, text)

    def _notify_here(self, user: str, text: str) -> None:
        """``text`` to every connection of ``user`` on this node (an invitation, a direct room)."""
        for member in self._members.values():
            if member.user == user:
                member.send(text)

    async def _join_stored(self, member: ChatMember, command: Join) -> None:
        """A private room's door: the stored membership first, then the join, from ``since_id`` on.

        The membership is read again once the room's last id is (``_catch_up``): a kick stored between
        the two reads is then seen, as this connection may have joined the hub after it was applied."""
        try:
            membership = await self.doors.admit(command, member.user, cached=True)
            if self.hooks is not None:  # the app's too; a no is a non-member's
                await self.hooks.join(member.user, command)
            if self._members.get(member.peer) is not member:
                return  # closed meanwhile
            authorize(command, lambda room: self.hub.is_member(member, room), member)
            self.doors.place(member, command.room, membership)
            self._join(member, command)
        except ChatError as error:
            if not self.hub.is_member(member, command.room):  # a resumed position's
                member.last_ids.pop(command.room, None)
            member.send(chat.error(error.code, error.message, error.ref))
        except Exception as exc:  # the store failed: the same answer whoever asks
            if not isinstance(exc, StoreUnavailable):
                log.exception("membership lookup failed room=%s", command.room)
            member.send(
                chat.error(
                    chat.UNAVAILABLE,
                    f"could not load {command.room}; join again",
                    command.ref,
                )
            )

    def _say(self, member: ChatMember, command: Say) -> None:
        if self.hooks is None:
            self._store_say(member, command)
        else:  # stored in its turn, once the app allowed what waits for it
            self.hooks.say(member, command, self._store_say)

    def _store_say(self, member: ChatMember, command: Say) -> None:
        item = NewMessage(command.room, member.user, command.text, time.time())

        def stored(message: StoredMessage) -> None:
            member.send(chat.ack(command.ref, message.room, message.id))
            self.feed.stored_here(message)

        def failed() -> None:
            member.send(
                chat.error(
                    chat.UNAVAILABLE, "message not stored; send it again", command.ref
                )
            )

        self.writer.submit(item, stored, failed)

    def _join(self, member: ChatMember, command: Join) -> None:
        room = command.room
        most = self.limits.max_rooms_per_connection
        if room not in member.last_ids and len(member.last_ids) >= most:
            raise ChatError(chat.TOO_MANY_ROOMS, f"at most {most} rooms per connection")
        # live delivery waits until the replay is out
        catch_up = member.catching_up[room] = CatchUp()
        member.last_ids.setdefault(room, 0)  # a resumed session's: where it resumes
        if not chat.has_door(room):  # say frames wait for the stored membership
            member.entering[room] = []
        self.feed.open_room(room)
        if self.hub.join(member, room):  # the user's first connection here
            self.feed.here(room, member.user, True)
            if not self.presence.elsewhere(room, member.user):
                self.hub.publish(
                    room, chat.presence(room, member.user, "joined"), exclude=member
                )
        self._spawn(member, self._catch_up(member, room, command.since, catch_up))

    def _spawn(self, member: ChatMember, coroutine: Coroutine[Any, Any, None]) -> None:
        task = member.spawn(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _catch_up(
        self, member: ChatMember, room: str, since: int | None, catch_up: CatchUp
    ) -> None:
        # False once the client left the room (and maybe joined again)
        def current() -> bool:
            return member.catching_up.get(room) is catch_up

        held = member.entering.get(room)  # a public room: its membership, read or begun
        try:
            if held is not None:
                found = await self.doors.enter_public(room, member.user)
                self._entered(member, room, held, found)
                held = None
                if not current():
                    return
            last_id = await self.health.call(
                "joining", self.reads.last_message_id(room)
            )
            if not current():
                return
            again = await self.doors.admit(Join(room), member.user)
            # ended meanwhile: begun again
            if again is None and not chat.has_door(room):
                again = await self.doors.enter_public(room, member.user)
            read, unread = await self.markers.joined(room, member.user, again, last_id)
            if not current():
                return
            self.doors.place(member, room, again)
            # the first member here: live delivery goes on after last_id
            self.feed.start_room(room, last_id)
            users = self.presence.users(room)
            assert again is not None  # a door's admit refuses, a public room is entered
            # Replay what the client missed, up to what was stored when it joined, what
            # the hub delivered since and what this node's feed had delivered before it
            # joined; then live delivery takes over.
            after = last_id if since is None else min(since, last_id)
            # a member of a private room: from since_id
            after = max(after, member.floors.get(room, 0))
            # Set before `joined`: a session's position (rawws.transports) includes it.
            member.last_ids[room] = after
            if since is not None and since > last_id:
                member.send(ahead(room, since, last_id))
            member.send(chat.joined(room, users, last_id, read, unread, again.kind))
            if since is not None:
                self.counters.catchups += 1
            while after < max(last_id, catch_up.newest, self.feed.delivered_upto(room)):
                page = await self.health.call(
                    "replay",
                    self.reads.messages_after(
                        room, after, self.limits.replay_page_messages
                    ),
                )
                if not current():
                    return
                if page[0].id > after + 1 if page else after < last_id:
                    # ids have no gaps but what retention removed: say so, never a silent gap
                    member.send(gap(room, after, page[0].id if page else last_id + 1))
                if not page:
                    break
                for message in page:
                    await member.make_room()
                    if not current() or not member.peer.open:
                        return
                    member.last_ids[room] = message.id
                    if message.kind != SAY and unseen(member, message):
                        continue  # an edit of a message from before their membership
                    if message.kind != SAY and not self.moderator.replayed(
                        member, message
                    ):
                        return  # kicked or banned at this point of the stream
                    member.send(chat.message(message))
                    self.counters.catchup_messages += 1
                after = page[-1].id
        except ChatError as error:  # no longer admitted (kicked or banned meanwhile)
            member.refuse_held(room, held, chat.NOT_JOINED, f"not in {room}")
            if current():
                self._leave(member, room)
                member.send(chat.error(error.code, error.message))
        except Exception as exc:
            member.refuse_held(
                room,
                held,
                chat.UNAVAILABLE,
                "message not stored; send it again",
            )
            if not isinstance(exc, StoreUnavailable):
                log.exception("replay failed room=%s", room)
            if current():
                self._leave(
                    member, room
                )  # out of the room, so that joining again is possible
                member.send(
                    chat.error(chat.UNAVAILABLE, f"could not load {room}; join again")
                )
        finally:
            if current():
                member.caught_up(room)
                for text, frame in catch_up.frames:
                    member.deliver(room, None, text, frame)
                self.streams.went_live(member, room)  # then the open streams

    def _entered(
        self, member: ChatMember, room: str, held: list[Say], found: Membership
    ) -> None:
        """The public membership is stored (or was): the ``say`` frames held meanwhile go on, in order."""
        member.stop_entering(room, held)
        self.doors.place(member, room, found)  # its mute, before the held say frames
        now = time.time()
        for say in held:  # the room's kind is known now: a feed's are refused
            if held_say_allowed(member, say, now):
                self._say(member, say)

    def _leave(self, member: ChatMember, room: str, now: float | None = None) -> None:
        member.forget(room)
        if self.hub.leave(member, room, now):  # the user's last connection here
            self.feed.here(room, member.user, False)
            if not self.presence.elsewhere(room, member.user):
                self.hub.publish(room, chat.presence(room, member.user, "left"))
        if not self.hub.occupied(room):
            self.feed.close_room(room)

    async def close(self) -> None:
        """Before the store closes: everything accepted is stored, and no query is still running.

        A replay or history query cancelled when its connection closed is still unwinding
        its database connection (SQLAlchemy terminates it); closing the store under it, or
        cancelling it a second time, can leave that task hanging so the process never exits.
        """
        await self.writer.flush()
        if self._grace is not None:
            self._grace.cancel()
        await self.markers.close()
        await self.feed.close()
        await self.streams.close()
        pending = [task for task in self._tasks if not task.done()]
        for task in pending:
            if not task.cancelling():
                task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=CLOSE_TASKS_TIMEOUT_S)
        await asyncio.wait_for(self.reads.wait_idle(), CLOSE_TASKS_TIMEOUT_S)
