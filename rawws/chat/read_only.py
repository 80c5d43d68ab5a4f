"""Feed rooms on a connection: learnt from the join's stored membership, held to ``rawws.chat.access``.

A feed's kind is stored (``rooms.kind``), not told by its name (a public room's
syntax), so a connection learns it where its join reads the store anyway
(``Doors.place``) and keeps it in ``ChatMember.feeds``; ``say`` then reads nothing.

The one moment the kind is not known yet is while a public join reads (or stores) the
membership: a ``say`` sent then is held (``ChatMember.entering``) and judged here once
it is known (``held_say_allowed``); an ``edit`` or ``delete`` then runs off the hot path
anyway, so the room's kind is read for it (``kind_known``); a ``typing`` then is dropped
(it is best effort, and tells nobody anything before the join is answered).
"""

from __future__ import annotations

from rawws.chat import wire as chat
from rawws.chat.access import authorize_publishing
from rawws.chat.member import ChatMember
from rawws.chat.moderation import refuse_muted
from rawws.errors import ChatError
from rawws.store import Store
from rawws.store.base import FEED


def held_say_allowed(member: ChatMember, say: chat.Say, now: float) -> bool:
    """A ``say`` held while the membership was read: it goes on, or is answered here (and not stored)."""
    try:
        authorize_publishing(say, member)
    except ChatError as error:
        member.send(chat.error(error.code, error.message, error.ref))
        return False
    return not (member.muted and refuse_muted(member, say.room, say.ref, now))


async def kind_known(member: ChatMember, room: str, store: Store) -> None:
    """Before a change is stored in a room whose join is still reading its membership: its kind,
    read from the store (the join's own read may not be done yet)."""
    info = await store.room_info(room)
    if info is not None and info.kind == FEED:
        member.feeds[room] = None
