"""How a client connection ended, as the exceptions ``send`` and ``recv`` raise.

Apart from the connection so that code which only reports an end (the CLI's exit codes,
the chat session) does not need the asyncio protocol to name it.
"""

from __future__ import annotations

from rawws.core.closecodes import GOING_AWAY, NO_STATUS_RECEIVED, NORMAL_CLOSURE
from rawws.core.connection import ConnectionClosed as _CoreConnectionClosed

OK_CLOSE_CODES = frozenset({NORMAL_CLOSURE, GOING_AWAY, NO_STATUS_RECEIVED})


class ConnectionClosed(_CoreConnectionClosed):
    """The WebSocket is closed (or closing): ``code`` and ``reason`` say how it ended."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"connection closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason


class ConnectionClosedOK(ConnectionClosed):
    """Closed normally: 1000, 1001, or a close frame without a code (1005)."""


class ConnectionClosedError(ConnectionClosed):
    """Closed with an error code, or lost without a closing handshake (1006)."""


def closed_error(code: int, reason: str = "") -> ConnectionClosed:
    kind = ConnectionClosedOK if code in OK_CLOSE_CODES else ConnectionClosedError
    return kind(code, reason)
