"""The ``Bus`` protocol: how a node reaches the others. Transport only: it carries bytes.

What the bytes mean is the chat's business (``rawws.chat.codec``): the bus neither
builds nor reads them. What it does vouch for is who sent them: a bus between nodes
seals every event (``rawws.bus.seal``) and hands on only those signed with the
cluster's key and fresh; the chat then decodes and checks them (``rawws.chat.feed``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol

Receiver = Callable[[bytes], None]


class Bus(Protocol):
    """How a node reaches the others. Publishing never blocks and never raises: a lost
    event is repaired by the receivers from the store (see ``rawws.chat.sequencer``)."""

    @property
    def connected(self) -> bool:
        """Events published now are expected to reach the other nodes."""
        ...

    def publish(self, data: bytes) -> None:
        """Queue ``data`` for every other node (dropped, and counted, if the bus is down)."""
        ...

    async def start(
        self, receive: Receiver, on_reconnect: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        """Connect and subscribe; ``receive`` gets every message on the bus, ``on_reconnect``
        runs each time the subscription comes back after an outage (catch up from the store)."""
        ...

    async def close(self) -> None: ...


class LocalBus:
    """The single-node default: there is no other node, so nothing to send or receive."""

    connected = True

    def publish(self, data: bytes) -> None:
        return None

    async def start(
        self, receive: Receiver, on_reconnect: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        return None

    async def close(self) -> None:
        return None
