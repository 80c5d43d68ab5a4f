"""How fast `rawws chat` may send: a token bucket that stays inside the server's, so no frame is dropped.

The server counts every frame a connection sends (``rawws.chat.service``:
``message_burst`` at once, refilled at ``messages_per_s``) and drops, unread,
whatever comes over that rate: a pasted or piped block of lines sent as fast as
it is read loses most of them. The client therefore paces itself with the
figures the ``welcome`` hands it, keeping a margin: half the burst and nine
tenths of the rate. The server's bucket then always holds at least the other
half of the burst more than ours (it starts as full, refills faster and holds
more), which absorbs frames that the network delivers closer together than we
sent them.

No clock here: ``now`` (seconds, any monotonic origin) is passed in, so the
rule is tested without sleeping. The sending loop is ``rawws.chatclient.outbox``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rawws.defaults import DEFAULT_CHAT_MESSAGE_BURST, DEFAULT_CHAT_MESSAGES_PER_S

BURST_SHARE = 0.5  # of the server's burst, used at once
RATE_SHARE = 0.9  # of the server's sustained rate


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The server's figures for one connection (a ``welcome``'s ``limits``)."""

    messages_per_s: float = DEFAULT_CHAT_MESSAGES_PER_S
    message_burst: int = DEFAULT_CHAT_MESSAGE_BURST

    @classmethod
    def from_welcome(cls, limits: Any) -> RateLimits | None:
        """The figures of a ``welcome``'s ``limits``; ``None`` if they are missing or nonsense."""
        if not isinstance(limits, dict):
            return None
        rate, burst = (
            _number(limits.get("messages_per_s")),
            _number(limits.get("message_burst")),
        )
        if rate is None or burst is None or rate <= 0 or burst < 1:
            return None
        return cls(rate, int(burst))


def _number(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    return None


class Pacer:
    """One connection's bucket: ``delay(now)`` says how long the next frame waits, ``take(now)`` spends.

    A new connection starts a full bucket (the server gives each connection its
    own). Until the ``welcome`` is read one frame may go (the first join: a URL
    that is not the chat answers it with something else, which tells us at once),
    at the server's default rate; ``configure`` then applies the real figures to
    what was already sent on this connection, so a server stricter than the
    defaults is respected from its first frame.
    """

    def __init__(self, limits: RateLimits | None = None, now: float = 0.0) -> None:
        self.reset(now, limits)

    def reset(self, now: float, limits: RateLimits | None = None) -> None:
        """A new connection: a full bucket, figures unknown until its ``welcome``."""
        self.opened = now
        self.sent = 0  # frames sent on this connection
        self._apply(limits or RateLimits(), now, known=limits is not None)

    def configure(self, limits: RateLimits, now: float) -> None:
        """The ``welcome``'s figures: the bucket as it would be had they been known from the start."""
        self._apply(limits, now)

    def _apply(self, limits: RateLimits, now: float, known: bool = True) -> None:
        self.limits = limits
        share = math.floor(limits.message_burst * BURST_SHARE)
        self.capacity = max(1.0, share) if known else 1.0
        self.rate = limits.messages_per_s * RATE_SHARE
        refilled = (now - self.opened) * self.rate
        self.tokens = min(self.capacity, self.capacity - self.sent + refilled)
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(
                self.capacity, self.tokens + (now - self.updated) * self.rate
            )
            self.updated = now

    def delay(self, now: float) -> float:
        """Seconds until the next frame may go (0.0: now)."""
        self._refill(now)
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate

    def take(self, now: float) -> None:
        """A frame went out (every frame counts, as on the server)."""
        self._refill(now)
        self.tokens -= 1.0
        self.sent += 1
