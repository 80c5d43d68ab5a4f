"""The app's hooks in the chat (``docs/server-api.md``, "Hooks"): ``join`` for a room with a door,
``say`` in the rooms ``--hook-say-room`` names, ``disconnect`` when a connection closes.

A ``say`` the app decides on waits for its answer, and so does every ``say`` the same connection sends
after it, in any room: a connection's messages are stored (and acknowledged) in the order it sent
them, never one overtaking another that waits on the app. At most ``MAX_WAITING_SAYS`` may wait per
connection; one more is refused at once (``rate_limited``), unstored. A ``say`` the app refuses is
answered ``forbidden`` with the app's reason, nothing stored, no ack; one the app could not be asked
about is ``unavailable`` under ``--hook-failure deny``. The connection must still be in the room
when the answer comes (a kick meanwhile wins).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from rawws.accounts.hook_deliveries import HookDeliveries
from rawws.accounts.hook_wire import DISCONNECT, JOIN, SAY, room_matches
from rawws.accounts.hooks import HookClient
from rawws.chat import wire as chat
from rawws.chat.member import ChatMember
from rawws.chat.peer import Peer
from rawws.chat.wire import Join, Say
from rawws.errors import ChatError

#: ``say`` frames of one connection that may wait for the app at once (the one asked about included).
MAX_WAITING_SAYS = 32
StoreSay = Callable[[ChatMember, Say], None]


class ChatHooks:
    """The before-hooks of the chat, asked through ``client``."""

    def __init__(
        self,
        client: HookClient,
        say_rooms: tuple[str, ...],
        is_member: Callable[[ChatMember, str], bool],
        max_waiting: int = MAX_WAITING_SAYS,
    ) -> None:
        self.client = client
        self.say_rooms = say_rooms
        self.is_member = is_member
        self.max_waiting = max_waiting
        #: A connection's ``say`` frames waiting, the first one on the app, in the order sent.
        self._lines: dict[ChatMember, deque[Say]] = {}

    async def join(self, user: str, command: Join) -> None:
        """The app's word on a join of a room with a door, after the stored membership allowed it: a
        refusal reads as a non-member's (``no_such_room``)."""
        verdict = await self.client.ask(JOIN, {"user": user, "room": command.room})
        if verdict.allow:
            return
        if verdict.failed:
            raise ChatError(
                chat.UNAVAILABLE,
                f"could not join {command.room}; try again",
                command.ref,
            )
        raise ChatError(chat.NO_SUCH_ROOM, f"no room {command.room}", command.ref)

    def say(self, member: ChatMember, command: Say, store: StoreSay) -> None:
        """``command`` stored at once (``store``), or in its turn behind the app's answers."""
        line = self._lines.get(member)
        if line is None:
            if not room_matches(self.say_rooms, command.room):
                store(member, command)  # nothing waits: the hot path is untouched
                return
            line = self._lines[member] = deque()
            member.spawn(self._drain(member, line, store))
        elif len(line) >= self.max_waiting:
            member.send(
                chat.error(
                    chat.RATE_LIMITED,
                    f"at most {self.max_waiting} messages may wait for the application",
                    command.ref,
                )
            )
            return
        line.append(command)

    async def _drain(
        self, member: ChatMember, line: deque[Say], store: StoreSay
    ) -> None:
        """Ask the app about each waiting ``say`` in turn; store the allowed ones in the order sent."""
        try:
            while line:
                command = line[0]
                if room_matches(self.say_rooms, command.room):
                    refusal = await self._ask(member, command)
                    if refusal is None and not self.is_member(member, command.room):
                        refusal = chat.error(
                            chat.NOT_JOINED, f"not in {command.room}", command.ref
                        )
                    if refusal is not None:
                        line.popleft()
                        member.send(refusal)
                        continue
                line.popleft()
                store(member, command)
        finally:
            if self._lines.get(member) is line:
                del self._lines[member]

    async def _ask(self, member: ChatMember, command: Say) -> str | None:
        """``None`` when the app allows ``command``, else the error frame to answer."""
        payload: dict[str, object] = {
            "user": member.user,
            "room": command.room,
            "text": command.text,
        }
        verdict = await self.client.ask(SAY, payload)
        if verdict.allow:
            return None
        if verdict.failed:
            return chat.error(
                chat.UNAVAILABLE,
                "the application is unavailable; send it again",
                command.ref,
            )
        reason = verdict.reason or "refused by the application"
        return chat.error(chat.FORBIDDEN, reason, command.ref)


class DisconnectHook:
    """The chat endpoint's handler with a ``disconnect`` after-hook queued as each connection closes
    (``on_open`` and ``on_message`` are the chat's own, bound: no call added per message)."""

    def __init__(
        self,
        on_open: Callable[[Peer], None],
        on_message: Callable[[Peer, str | bytes], None],
        on_close: Callable[[Peer, int], None],
        deliveries: HookDeliveries,
        node: str,
    ) -> None:
        self.on_open = on_open
        self.on_message = on_message
        self._chat_closed = on_close
        self.deliveries = deliveries
        self.node = node

    def on_close(self, peer: Peer, code: int) -> None:
        self._chat_closed(peer, code)
        if peer.user is not None:
            self.deliveries.enqueue(
                DISCONNECT,
                {"user": peer.user, "node": self.node, "at": time.time(), "code": code},
            )
