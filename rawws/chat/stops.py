"""The chat's open connections by user, so a stopped account's are closed (1008) on this node.

``accounts.stops.StopBook`` hears of a ``not_before`` stamp (this node's logout, or
the store poll); it calls ``ConnectionStops.stop``, which closes every connection of
that user opened with a credential the stamp stops: all of them when the account is
disabled, those issued at or before the stamp after a logout or password change (a
connection opened with a token issued after it, on another device, stays).
"""

from __future__ import annotations

import logging

from rawws.accounts.stops import why
from rawws.accounts.tokens import Identity
from rawws.chat.peer import Peer
from rawws.core.closecodes import POLICY_VIOLATION
from rawws.core.counters import Counters
from rawws.store.base import Stamp
from rawws.store.names import username_key

log = logging.getLogger("rawws.chat")


class ConnectionStops:
    """Open chat connections by user key; ``stop`` closes those a stamp stops."""

    def __init__(self, counters: Counters) -> None:
        self._by_user: dict[str, set[Peer]] = {}
        self.counters = counters

    def add(self, peer: Peer, user: str) -> None:
        self._by_user.setdefault(username_key(user), set()).add(peer)

    def remove(self, peer: Peer, user: str) -> None:
        key = username_key(user)
        peers = self._by_user.get(key)
        if peers is not None:
            peers.discard(peer)
            if not peers:
                del self._by_user[key]

    def peers(self, user: str) -> list[Peer]:
        """``user``'s open connections on this node (a read marker that moved is told to each)."""
        return list(self._by_user.get(username_key(user), ()))

    def stop(self, stamp: Stamp) -> None:
        """Close (1008, the reason said) each of the user's connections ``stamp`` stops."""
        closed = 0
        for peer in list(self._by_user.get(stamp.user_key, ())):
            identity = peer.identity
            if not isinstance(identity, Identity):
                continue
            reason = why(stamp, identity)
            if reason is not None:
                closed += 1
                peer.close(POLICY_VIOLATION, reason)
        if closed:
            self.counters.account_stop_closes += closed
            log.info(
                "account stopped (%s): %d connection(s) closed",
                "disabled" if stamp.disabled else "signed out",
                closed,
            )
