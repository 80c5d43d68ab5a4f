"""WebSocket close codes (RFC 6455 §7.4.1, and the IANA registry's 1012–1014) as one ``IntEnum``.

An ``IntEnum`` compares equal to the integer on the wire, so a code read from a
close frame can be checked against these names directly, and it prints its
name in logs and test failures. The module-level names are the same members,
for ``from rawws.core.closecodes import GOING_AWAY``.
"""

from __future__ import annotations

import enum


class CloseCode(enum.IntEnum):
    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001  # server shutdown, page navigated away
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RECEIVED = 1005  # never on the wire: a close frame without a code
    ABNORMAL_CLOSURE = 1006  # never on the wire: TCP ended without a close frame
    INVALID_PAYLOAD = 1007  # e.g. bad UTF-8
    POLICY_VIOLATION = 1008  # rawws: slow consumer, expired token
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014


NORMAL_CLOSURE = CloseCode.NORMAL_CLOSURE
GOING_AWAY = CloseCode.GOING_AWAY
PROTOCOL_ERROR = CloseCode.PROTOCOL_ERROR
NO_STATUS_RECEIVED = CloseCode.NO_STATUS_RECEIVED
ABNORMAL_CLOSURE = CloseCode.ABNORMAL_CLOSURE
INVALID_PAYLOAD = CloseCode.INVALID_PAYLOAD
POLICY_VIOLATION = CloseCode.POLICY_VIOLATION
MESSAGE_TOO_BIG = CloseCode.MESSAGE_TOO_BIG
INTERNAL_ERROR = CloseCode.INTERNAL_ERROR
TRY_AGAIN_LATER = CloseCode.TRY_AGAIN_LATER

#: The label of every close code that is not a ``CloseCode`` member.
OTHER_LABEL = "other"


def close_code_label(code: int | None) -> str:
    """The metric label of a close code: a ``CloseCode`` member's number, else ``other``.

    A client picks the code it closes with (any of 3000–4999 is valid on the
    wire), so labelling by the raw number would let clients mint a series each.
    The members are the codes registered for the wire plus 1005 and 1006, which
    rawws records for a close frame without a code and a connection lost without one.
    """
    if code is not None and code in _KNOWN:
        return str(code)
    return OTHER_LABEL


_KNOWN = frozenset(int(member) for member in CloseCode)
