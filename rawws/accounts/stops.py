"""Accounts that can be stopped: each node's copy of the users' ``not_before`` stamps.

A stamp (set by logout, a password change, or `rawws admin disable`) stops every
token of its user issued at or before it: access tokens at ``/auth/ticket`` and at
the upgrade (401 before the 101), and the open connections they opened (1008).

Checked on every upgrade, so it is a dictionary here, not a query: the node that
sets a stamp notes it at once; every node polls the store for stamps set since
its last look (``store.stamps_since``, an index range, usually empty) every
``POLL_S``, so a stamp set by another node or by the command line reaches all of
them within about half a second, with or without the bus (the store is the one
record every node already shares). With a bus, a stamp set by a node is also
published (``chat.codec.Stopped``), so the others close its connections at once;
a stamp the bus lost, or one `rawws admin` set, arrives by the poll.

Memory is bounded: a stamp older than the longest a token lives (``horizon_s``: the
access-token lifetime and the leeway) stops nothing that is not expired already, and
is dropped. A disabled user's entry refuses every token, whatever its age, until then:
a login that raced the disable cannot outlive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from rawws.accounts.tokens import Identity
from rawws.errors import AuthError
from rawws.store.base import Stamp, Store
from rawws.store.names import username_key
from rawws.store.outage import StoreHealth, StoreUnavailable

log = logging.getLogger("rawws.accounts")

POLL_S = 0.5  # how often every node asks the store for new stamps ("within one second")
OVERLAP_S = 5.0  # each poll reads back this far: a stamp committed late, or by a clock a little behind
SIGNED_OUT = "signed out"
DISABLED = "account disabled"

Listener = Callable[[Stamp], None]


class StopBook:
    """The stamps of the users stopped lately, kept fresh by ``note`` and the store poll."""

    def __init__(
        self,
        store: Store,
        horizon_s: float,
        *,
        health: StoreHealth | None = None,
        poll_s: float = POLL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.horizon_s = horizon_s
        self.health = health if health is not None else StoreHealth()
        self.poll_s = poll_s
        self.clock = clock
        self._stamps: dict[str, Stamp] = {}
        #: Called with each stamp that is new to this node (the chat closes its connections).
        self.listeners: list[Listener] = []
        #: Called with each stamp this node set (with a bus: the other nodes hear it at once).
        self.announcers: list[Listener] = []
        self._since = 0.0
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._stamps)

    def stopped(self, identity: Identity) -> str | None:
        """Why ``identity``'s credential is stopped (``SIGNED_OUT``, ``DISABLED``), or ``None``."""
        stamp = self._stamps.get(username_key(identity.user))
        return None if stamp is None else why(stamp, identity)

    def check(self, identity: Identity) -> None:
        """401 when the credential is stopped: at ``/auth/ticket`` and at the upgrade."""
        reason = self.stopped(identity)
        if reason is not None:
            raise AuthError(f"token revoked ({reason}): sign in again")

    def note(self, stamp: Stamp) -> None:
        """A stamp, from this node or the poll; the listeners hear it once, if it is news."""
        known = self._stamps.get(stamp.user_key)
        if known is not None and (
            known == stamp or known.not_before > stamp.not_before
        ):
            return
        self._stamps[stamp.user_key] = stamp
        for listener in self.listeners:
            try:
                listener(stamp)
            except Exception:
                log.exception("a stop listener failed user=%s", stamp.user_key)

    def stamped(self, stamp: Stamp) -> None:
        """This node set ``stamp`` (a logout, a password change): note it, and tell the others."""
        self.note(stamp)
        for announce in self.announcers:
            try:
                announce(stamp)
            except Exception:  # the poll still carries it
                log.exception("announcing a stop failed user=%s", stamp.user_key)

    async def start(self) -> None:
        """Load the stamps that can still stop a token, then poll for new ones."""
        self._since = self.clock() - self.horizon_s
        await self.poll()
        self._task = asyncio.create_task(self._run())

    async def poll(self) -> None:
        """One look at the store for stamps set since the last (and a little before)."""
        started = self.clock()
        try:
            stamps = await self.health.call(
                "stops", self.store.stamps_since(self._since)
            )
        except StoreUnavailable:
            return  # logged once by the health; the stamps known here still hold
        self._since = max(self._since, started - OVERLAP_S)
        for stamp in stamps:
            self.note(stamp)
        self._prune(started)

    def _prune(self, now: float) -> None:
        oldest = now - self.horizon_s
        if any(stamp.not_before < oldest for stamp in self._stamps.values()):
            self._stamps = {
                key: stamp
                for key, stamp in self._stamps.items()
                if stamp.not_before >= oldest
            }

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.poll()
            except Exception:
                log.exception("polling for account stops failed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def why(stamp: Stamp, identity: Identity) -> str | None:
    """Whether ``stamp`` stops a credential of ``identity`` (its user's), and why.

    Issue times are whole milliseconds rounded down, so a token issued in the same
    millisecond as the stamp is stopped: never one issued before it let through.
    """
    if stamp.disabled:
        return DISABLED
    if identity.issued_at <= stamp.not_before:
        return SIGNED_OUT
    return None
