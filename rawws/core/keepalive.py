"""Keepalive decisions with no clock of their own: is a ping due, is the pong overdue?

Both ends of rawws keep a connection alive the same way, and this is the one
place that decides it; the caller reads its own clock and passes ``now``
(the event loop's monotonic time), so tests drive it with plain numbers.

* A ping is due ``ping_interval_s`` after the previous one (or after the
  start), and never while an earlier ping still waits for its pong.
* A pong is overdue ``ping_timeout_s`` after its ping. The peer is then taken
  for dead and the connection **fails with 1011** ("keepalive ping timeout"):
  a close frame with that code is written as a courtesy (a peer that is only
  slow learns why) and TCP is dropped at once, without waiting for a closing
  handshake a dead peer cannot finish. Server and client do the same, and
  1011 is what websockets does too; 1006 is never sent (RFC 6455 §7.4.1), it
  only names a connection lost without any close frame.
* ``peer_alive``: data from the peer that is still unread (the client's
  paused reading) may hold the pong; then the deadline moves on by one
  timeout instead of failing a peer that is demonstrably sending.

``next_deadline`` lets a caller that sweeps many connections skip the ones
with nothing due.
"""

from __future__ import annotations

import enum

from rawws.core.closecodes import INTERNAL_ERROR

KEEPALIVE_FAILURE_CODE = INTERNAL_ERROR
KEEPALIVE_FAILURE_REASON = "keepalive ping timeout"


class Due(enum.Enum):
    NOTHING = "nothing"
    PING = "ping"  # send a ping, then call ``ping_sent``
    PONG_OVERDUE = "pong overdue"  # fail the connection with KEEPALIVE_FAILURE_CODE


class Keepalive:
    """One connection's keepalive schedule. ``0`` (or less) for an interval or timeout switches it off."""

    __slots__ = ("ping_interval_s", "ping_timeout_s", "_next_ping_at", "_pong_due_at")

    def __init__(
        self, ping_interval_s: float | None, ping_timeout_s: float | None, now: float
    ) -> None:
        self.ping_interval_s = (
            ping_interval_s if ping_interval_s and ping_interval_s > 0 else None
        )
        self.ping_timeout_s = (
            ping_timeout_s if ping_timeout_s and ping_timeout_s > 0 else None
        )
        self._next_ping_at = (
            now + self.ping_interval_s if self.ping_interval_s is not None else None
        )
        self._pong_due_at: float | None = None

    @property
    def next_deadline(self) -> float | None:
        """The earliest time something may be due, or ``None`` when nothing ever will be."""
        if self._pong_due_at is not None:
            return self._pong_due_at
        return self._next_ping_at

    def due(self, now: float, *, awaiting_pong: bool, peer_alive: bool = False) -> Due:
        """What the connection must do at ``now``; ``awaiting_pong``: our last ping has no pong yet."""
        if self._pong_due_at is not None:
            if not awaiting_pong:
                self._pong_due_at = None  # answered
            elif now < self._pong_due_at:
                return Due.NOTHING
            elif peer_alive and self.ping_timeout_s is not None:
                self._pong_due_at = now + self.ping_timeout_s
                return Due.NOTHING
            else:
                return Due.PONG_OVERDUE
        if self._next_ping_at is not None and now >= self._next_ping_at:
            return Due.PING
        return Due.NOTHING

    def ping_sent(self, now: float) -> None:
        """A keepalive ping left at ``now``: its pong is due in ``ping_timeout_s``, the next ping after the interval."""
        if self.ping_timeout_s is not None:
            self._pong_due_at = now + self.ping_timeout_s
        if self.ping_interval_s is not None:
            self._next_ping_at = now + self.ping_interval_s

    def stop(self) -> None:
        """The connection is closing: nothing is due any more."""
        self._next_ping_at = self._pong_due_at = None
