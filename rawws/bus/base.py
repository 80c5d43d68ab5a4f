"""The ``Bus`` protocol: how a node reaches the others. Transport only: it carries bytes.

What the bytes mean is the chat's business (``rawws.chat.codec``): the bus neither
builds nor reads them, so anything that can publish on it is only ever a sender of
bytes that the receiving node judges (``rawws.chat.feed`` decodes and checks them).
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
