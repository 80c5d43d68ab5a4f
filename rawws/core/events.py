"""What a WebSocket connection reports to the application: small frozen values."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A whole message, reassembled from its fragments: ``str`` for text, ``bytes`` for binary."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class PongReceived:
    """The peer answered a ping with this payload."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Closed:
    """The WebSocket is over. ``code`` is the close code that ended it (1006: no close frame).

    ``by_peer`` tells who started the closing handshake or failed the connection.
    """

    code: int
    reason: str = ""
    by_peer: bool = True


Event = MessageReceived | PongReceived | Closed
