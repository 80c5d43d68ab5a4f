"""How a connection ended, as the exceptions ``send`` and ``recv`` raise (server and client alike).

Apart from the connection so that code which only reports an end (the CLI's exit codes,
the chat session) does not need the asyncio protocol to name it. The exceptions
themselves live in ``rawws.errors`` with the rest of the tree.
"""

from __future__ import annotations

from rawws.core.closecodes import GOING_AWAY, NO_STATUS_RECEIVED, NORMAL_CLOSURE
from rawws.errors import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK

OK_CLOSE_CODES = frozenset({NORMAL_CLOSURE, GOING_AWAY, NO_STATUS_RECEIVED})


def closed_error(code: int, reason: str = "") -> ConnectionClosed:
    """The exception for a close with ``code``: OK for a normal end, Error otherwise, so callers can tell them apart."""
    kind = ConnectionClosedOK if code in OK_CLOSE_CODES else ConnectionClosedError
    return kind(code, reason)
