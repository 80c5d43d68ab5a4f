"""The lines a user typed that the server has not stored yet: queued, sent, acknowledged, sent again. No I/O.

A typed line is never dropped: it waits in order (``rawws.chatclient.outbox``
sends it when the pace allows), and one the server did not take is sent again:

* ``unavailable`` with its ref: the store failed it (``send it again``).
* ``rate_limited``: the server dropped frames *unread* and cannot say which,
  so every say sent and not yet acknowledged is in doubt. The server answers
  a connection's says in the order it read them (one writer, first in, first
  out), so an ack for a later say proves an earlier one in doubt was dropped:
  it is sent again at once. What is still in doubt a while after its drop
  (``settle``: its ack would have come) is sent again too. A say sent again
  lands after the ones sent after it: pacing is what keeps the order, this
  only keeps the lines.
* a dropped connection: a say never sent (or typed while there was none) is
  sent on the next connection; one sent without an ack is reported, not sent
  again (it may have been stored: no duplicates).

A say is tried at most ``MAX_TRIES`` times, so a store that stays down does not
loop for ever.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from rawws.chat.client_frames import say_frame

MAX_TRIES = 5


@dataclass(slots=True)
class PendingSay:
    """A say not yet acknowledged: what an ``error`` with its ref is reported against."""

    room: str
    text: str
    tries: int = 1
    sent: int = 0  # its place in the sending order; 0: still queued
    in_doubt: int = 0  # sent before the n-th ``rate_limited`` (0: not in doubt)


class Says:
    """Pending says by ref, in the order they were made."""

    def __init__(self, refs: itertools.count[int]) -> None:
        self.pending: dict[str, PendingSay] = {}
        self._refs = refs
        self._unsent: dict[str, str] = {}  # frame → ref, until it is sent
        self._sent = itertools.count(1)
        self.refused = 0  # says the server refused, or failed MAX_TRIES times
        self.drops = 0  # ``rate_limited`` errors so far

    def new(self, room: str, text: str, tries: int = 1) -> str:
        """A say frame for ``text`` in ``room``, pending from now on."""
        ref = f"c{next(self._refs)}"
        self.pending[ref] = PendingSay(room, text, tries)
        frame = say_frame(room, text, ref)
        self._unsent[frame] = ref
        return frame

    def again(self, say: PendingSay) -> str | None:
        """The frame to send ``say`` once more, or ``None`` when it was tried enough."""
        if say.tries >= MAX_TRIES:
            self.refused += 1
            return None
        return self.new(say.room, say.text, say.tries + 1)

    def on_sent(self, frame: str) -> None:
        """The frame went out on the connection (it was queued until now)."""
        ref = self._unsent.pop(frame, None)
        say = self.pending.get(ref) if ref is not None else None
        if say is not None:
            say.sent = next(self._sent)

    def acked(self, ref: str) -> list[PendingSay]:
        """``ref`` is stored; the says in doubt sent before it, which were dropped (to send again)."""
        say = self.pending.pop(ref, None)
        if say is None or not say.sent:
            return []
        return self._take(lambda other: bool(other.in_doubt) and other.sent < say.sent)

    def failed(self, ref: object) -> PendingSay | None:
        """The say an ``error`` with ``ref`` refused, no longer pending."""
        return self.pending.pop(ref, None) if isinstance(ref, str) else None

    def rate_limited(self) -> bool:
        """Frames were dropped unread: every say sent and unacknowledged is in doubt. Any?"""
        self.drops += 1
        doubtful = [say for say in self.pending.values() if say.sent]
        for say in doubtful:
            say.in_doubt = say.in_doubt or self.drops
        return bool(doubtful)

    @property
    def in_doubt(self) -> bool:
        return any(say.in_doubt for say in self.pending.values())

    def settle(self, upto: int) -> list[PendingSay]:
        """No ack came for the says in doubt since the ``upto``-th ``rate_limited`` a while ago:
        they were dropped (to send again). Those in doubt since a later one wait their while."""
        return self._take(lambda say: 0 < say.in_doubt <= upto)

    def disconnected(self) -> list[PendingSay]:
        """The connection is gone: the says it sent without an ack (reported, not sent again).

        The ones it never sent (still queued when it dropped) stay pending, for the next one.
        """
        self._unsent.clear()  # ``requeue`` makes their frames anew
        lost = [say for say in self.pending.values() if say.sent]
        self.pending = {ref: say for ref, say in self.pending.items() if not say.sent}
        return lost

    def requeue(self, rooms: set[str]) -> tuple[list[str], list[PendingSay]]:
        """The says kept from a dropped connection (or typed while there was none), as frames
        for the new one; and the ones whose room is no longer ours (not sent: refused)."""
        kept, self.pending = list(self.pending.values()), {}
        self._unsent.clear()
        frames = [
            self.new(say.room, say.text, say.tries) for say in kept if say.room in rooms
        ]
        gone = [say for say in kept if say.room not in rooms]
        self.refused += len(gone)
        return frames, gone

    def _take(self, which: Callable[[PendingSay], bool]) -> list[PendingSay]:
        taken = {ref: say for ref, say in self.pending.items() if which(say)}
        for ref in taken:
            del self.pending[ref]
        return sorted(taken.values(), key=lambda say: say.sent)
