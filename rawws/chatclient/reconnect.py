"""When a dropped chat connection is opened again, how long to wait, and how a failed attempt reads.

No I/O: the close code and the exception of a failed attempt in, a decision out.
The reconnecting loop itself is ``rawws.chatclient.session.ChatSession``.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

from rawws.core.closecodes import CloseCode
from rawws.errors import (
    AuthFailed,
    ConnectionClosed,
    HandshakeRejected,
    InvalidHandshake,
)

# Reconnect after these close codes (going away, lost, policy such as "slow consumer" or
# "token expired", server error, restart, try again later, bad gateway); never after 1000,
# nor after a close that says our own frames were wrong (1002, 1003, 1007, 1009, 1010).
RECONNECT_CLOSE_CODES = frozenset(
    {
        CloseCode.GOING_AWAY,
        CloseCode.ABNORMAL_CLOSURE,
        CloseCode.POLICY_VIOLATION,
        CloseCode.INTERNAL_ERROR,
        CloseCode.SERVICE_RESTART,
        CloseCode.TRY_AGAIN_LATER,
        CloseCode.BAD_GATEWAY,
    }
)


def should_reconnect(close_code: int | None) -> bool:
    """A connection that ended with this code is worth opening again (``None``: lost without a code)."""
    return close_code is None or close_code in RECONNECT_CLOSE_CODES


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with "equal jitter": attempt n waits between half and all of min(cap, initial·2ⁿ⁻¹).

    Half the delay is random so that many clients dropped at once do not come
    back at once; the other half keeps a floor so none hammers the server.
    """

    initial_s: float = 0.5
    cap_s: float = 15.0
    attempts: int = 10
    factor: float = 2.0

    def __post_init__(self) -> None:
        if (
            self.initial_s <= 0
            or self.cap_s < self.initial_s
            or self.attempts < 0
            or self.factor < 1
        ):
            raise ValueError(
                "backoff needs 0 < initial <= cap, attempts >= 0 and factor >= 1"
            )

    def ceiling(self, attempt: int) -> float:
        """The longest wait before attempt ``attempt`` (1-based)."""
        return min(self.cap_s, self.initial_s * self.factor ** min(attempt - 1, 64))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = self.ceiling(attempt)
        return (rng or random).uniform(ceiling / 2, ceiling)

    def schedule(self, rng: random.Random | None = None) -> list[float]:
        """Every delay, in order."""
        return [self.delay(attempt, rng) for attempt in range(1, self.attempts + 1)]


DEFAULT_BACKOFF = Backoff()


def retryable(error: BaseException) -> bool:
    """Whether a failed reconnection attempt is worth another one.

    A refused upgrade (an HTTP answer to it) and refused credentials are final;
    a server that is not listening, not answering or dropping us mid-way is
    not. Certificate failures (``ValueError``) are final too.
    """
    if isinstance(error, AuthFailed):
        return error.retryable
    if isinstance(error, HandshakeRejected):
        return False
    if isinstance(error, (InvalidHandshake, ConnectionClosed, TimeoutError)):
        return True
    if isinstance(error, ValueError):
        return False
    return isinstance(error, OSError)


def describe(error: BaseException) -> str:
    """One short line for a failed attempt; never a URL (it may hold a ticket)."""
    if isinstance(error, HandshakeRejected):
        return f"upgrade refused: HTTP {error.status} {error.reason}".rstrip()
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, ConnectionError) and error.errno:
        return os.strerror(error.errno)
    if isinstance(error, OSError):
        return error.strerror or str(error) or type(error).__name__
    return str(error) or type(error).__name__
