"""Open WebSockets counted per user and per client address, so neither can hold the server's sockets alone.

Counted at the upgrade, after authentication and before the 101: one over a
limit earns ``429 Too Many Requests`` with ``Retry-After`` (RFC 6585 §4), and
the slot is given back when the session ends, whichever way it ends.

Each process counts its own connections; when several processes serve one
chat (``--workers``, several nodes) the app also sets ``shared``, a count kept
where every node sees it (the chat's ``SharedConnections``, in Redis), and
``admit_everywhere`` counts the connection there too: the limit is then the
cluster's, not each process's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from rawws.core.addresses import peer_limit_key
from rawws.errors import HttpError

RETRY_AFTER_S = (
    10  # a connection slot frees when another connection ends: there is no exact time
)


class SharedCounts(Protocol):
    """Open connections counted across every process that serves the same users."""

    async def admit(
        self, user: str | None, address: str, per_user: int, per_address: int
    ) -> Callable[[], None] | None:
        """Count one connection of ``user`` from ``address`` (a limit key) in: the function that
        counts it out again, or ``None`` when either is already at its limit across the nodes."""
        ...


class ConnectionLimits:
    """``admit`` counts a connection in (or raises 429); the function it returns counts it out, once."""

    def __init__(self, per_user: int, per_address: int) -> None:
        if per_user <= 0 or per_address <= 0:
            raise ValueError("connection limits must be positive")
        self.per_user = per_user
        self.per_address = per_address
        self._users: dict[str, int] = {}
        self._addresses: dict[str, int] = {}
        #: The count every node shares, when there are several (set by the app).
        self.shared: SharedCounts | None = None

    async def admit_everywhere(self, user: str | None, peer: str) -> Callable[[], None]:
        """``admit`` here, then in the shared count when there is one (429 if either is full)."""
        release_here = self.admit(user, peer)  # a refusal costs no round trip
        if self.shared is None:
            return release_here
        try:
            release_there = await self.shared.admit(
                user, peer_limit_key(peer), self.per_user, self.per_address
            )
        except BaseException:
            release_here()
            raise
        if release_there is None:
            release_here()
            raise _too_many("too many connections for this user or from this address")
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                release_here()
                release_there()

        return release

    def admit(self, user: str | None, peer: str) -> Callable[[], None]:
        address = peer_limit_key(peer)  # an IPv6 client's whole /64 is one address
        if self._addresses.get(address, 0) >= self.per_address:
            raise _too_many("too many connections from this address")
        if user is not None and self._users.get(user, 0) >= self.per_user:
            raise _too_many("too many connections for this user")
        _add(self._addresses, address, 1)
        if user is not None:
            _add(self._users, user, 1)
        return _Release(self, address, user)

    def open_for(self, user: str) -> int:
        return self._users.get(user, 0)


class _Release:
    """What ``admit`` returns: called, it counts its connection out of the limits, once.

    Kept for every open connection, so an object of three slots rather than a closure,
    which would cost a function and a cell per variable it closes over (about 380 bytes).
    """

    __slots__ = ("_limits", "_address", "_user")

    def __init__(
        self, limits: ConnectionLimits, address: str, user: str | None
    ) -> None:
        self._limits: ConnectionLimits | None = limits
        self._address = address
        self._user = user

    def __call__(self) -> None:
        limits = self._limits
        if limits is None:
            return  # released already
        self._limits = None
        _add(limits._addresses, self._address, -1)
        if self._user is not None:
            _add(limits._users, self._user, -1)


def _add(counts: dict[str, int], key: str, delta: int) -> None:
    value = counts.get(key, 0) + delta
    if value > 0:
        counts[key] = value
    else:
        counts.pop(key, None)  # an idle key costs nothing


def _too_many(message: str) -> HttpError:
    return HttpError(429, message, [("Retry-After", str(RETRY_AFTER_S))])
