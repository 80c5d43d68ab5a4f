"""The applications' client of the server API (``/api/v1``): publish, rooms, members, streams, over asyncio streams and h11.

``ApiClient(url, key)`` is the whole of it for a backend; ``rawws.api.wire`` and
``rawws.api.answers`` are its parts without I/O (what a call's bytes are, what an
answer means), ``rawws.api.connection`` the keep-alive connections under it.
"""

from __future__ import annotations

from rawws.api.answers import (
    Membership,
    Published,
    RoomInfo,
    StreamAppended,
    StreamFinished,
)
from rawws.api.client import ApiClient, Stream, new_idempotency_key
from rawws.api.errors import ApiError, ApiUnreachable

__all__ = [
    "ApiClient",
    "ApiError",
    "ApiUnreachable",
    "Membership",
    "Published",
    "RoomInfo",
    "Stream",
    "StreamAppended",
    "StreamFinished",
    "new_idempotency_key",
]
