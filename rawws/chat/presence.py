"""Who is in which room across every node, with no I/O.

Each node knows its own members (the ``Hub``) and hears the others': a
``presence`` event when a user's first connection on a node joins a room or
its last one leaves, and a full snapshot in every heartbeat, so a lost event
is corrected within one heartbeat. A node not heard from for ``ttl_s`` is
taken for dead and its users leave. A user counts once, however many nodes
and tabs it is on: ``joined`` when it appears in the cluster, ``left`` when it
is gone from every node, never twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rawws.chat import wire
from rawws.chat.hub import Hub
from rawws.config import DEFAULT_PRESENCE_TTL_S as DEFAULT_PRESENCE_TTL_S

Snapshot = dict[str, frozenset[str]]  # room → users present on one node


@dataclass(frozen=True, slots=True)
class Change:
    room: str
    user: str
    joined: bool  # False: left


class ClusterPresence:
    def __init__(
        self,
        local_users: Callable[[str], Iterable[str]],
        ttl_s: float = DEFAULT_PRESENCE_TTL_S,
    ) -> None:
        self._local_users = local_users  # room → this node's users (the hub)
        self.ttl_s = ttl_s
        self._remote: dict[str, Snapshot] = {}  # node → its rooms and users
        self._heard: dict[str, float] = {}  # node → when it was last heard from

    def users(self, room: str) -> list[str]:
        """Every user in ``room`` on any node that is alive, sorted."""
        present = set(self._local_users(room))
        for rooms in self._remote.values():
            present.update(rooms.get(room, ()))
        return sorted(present)

    def elsewhere(self, room: str, user: str, *, but: str | None = None) -> bool:
        """``user`` is in ``room`` on some other node (not ``but``)."""
        return any(
            user in rooms.get(room, ())
            for node, rooms in self._remote.items()
            if node != but
        )

    def _here(self, room: str, user: str) -> bool:
        return user in set(self._local_users(room))

    def _visible_change(self, node: str, room: str, user: str, joined: bool) -> bool:
        return not self._here(room, user) and not self.elsewhere(room, user, but=node)

    def event(
        self, node: str, room: str, user: str, joined: bool, now: float
    ) -> list[Change]:
        """Node ``node`` says ``user`` joined (or left) ``room`` there."""
        self._heard[node] = now
        rooms = self._remote.setdefault(node, {})
        users = rooms.get(room, frozenset())
        if (user in users) == joined:
            return []
        change = self._visible_change(node, room, user, joined)
        users = users | {user} if joined else users - {user}
        if users:
            rooms[room] = users
        else:
            rooms.pop(room, None)
        return [Change(room, user, joined)] if change else []

    def snapshot(self, node: str, rooms: Snapshot, now: float) -> list[Change]:
        """Node ``node``'s full presence (from its heartbeat): the differences, as changes."""
        self._heard[node] = now
        before = self._remote.get(node, {})
        changes: list[Change] = []
        for room in set(before) | set(rooms):
            old, new = before.get(room, frozenset()), rooms.get(room, frozenset())
            for user in sorted(new - old):
                if self._visible_change(node, room, user, True):
                    changes.append(Change(room, user, True))
            for user in sorted(old - new):
                if self._visible_change(node, room, user, False):
                    changes.append(Change(room, user, False))
        self._remote[node] = {room: users for room, users in rooms.items() if users}
        return changes

    def expire(self, now: float) -> list[Change]:
        """Nodes not heard from within ``ttl_s``: gone, and their users with them."""
        changes: list[Change] = []
        for node in [n for n, heard in self._heard.items() if now - heard > self.ttl_s]:
            changes.extend(self.forget(node))
        return changes

    def forget(self, node: str) -> list[Change]:
        """``node`` is gone (it said goodbye, or it expired)."""
        self._heard.pop(node, None)
        rooms = self._remote.pop(node, {})
        return [
            Change(room, user, False)
            for room, users in sorted(rooms.items())
            for user in sorted(users)
            if not self._here(room, user) and not self.elsewhere(room, user)
        ]


def announcer(hub: Hub) -> Callable[[Change], None]:
    """What a node does when a user appeared on / vanished from every other node's view: tell its members."""

    def announce(change: Change) -> None:
        hub.publish(
            change.room,
            wire.presence(
                change.room, change.user, "joined" if change.joined else "left"
            ),
        )

    return announce
