"""``history``: a page of a room's stored entries, as far as this connection may read them."""

from __future__ import annotations

import logging

from rawws.chat import wire as chat
from rawws.chat.member import ChatMember
from rawws.chat.wire import HistoryRequest
from rawws.store import Store
from rawws.store.outage import StoreHealth, StoreUnavailable

log = logging.getLogger("rawws.chat")


async def answer_history(
    store: Store, health: StoreHealth, member: ChatMember, command: HistoryRequest
) -> None:
    """The page before ``command.before``, between the member's floor (where its membership
    began) and what this connection was delivered; an ``error`` when the store fails."""
    try:
        # Never past what this connection was delivered: its node may not have applied
        # a kick stored since, and nothing after that kick may reach the kicked.
        upto = member.last_ids.get(command.room, 0) + 1
        before = upto if command.before is None else min(command.before, upto)
        found = await health.call(
            "history", store.messages_before(command.room, before, command.limit)
        )
    except Exception as exc:
        if not isinstance(exc, StoreUnavailable):
            log.exception("history failed room=%s", command.room)
        member.send(chat.error(chat.UNAVAILABLE, "history unavailable"))
        return
    floor = member.floors.get(command.room, 0)
    member.send(chat.history(command.room, [m for m in found if m.id > floor]))
