"""One flush per event-loop turn for every connection that was written to from outside its own read.

A fan-out to 1,000 receivers, or a coroutine handler's ``await send()``, queues
frames in each connection's outbox; the first such push of a turn schedules
one callback here, which writes every connection that has something pending
(one ``transport.write`` each), instead of 1,000 callbacks or a write per frame.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Protocol

from rawws.core.closecodes import INTERNAL_ERROR

log = logging.getLogger("rawws.server")


class Flushed(Protocol):
    peer: str

    def _flush(self) -> None: ...

    def abort(self, code: int = ..., reason: str = ...) -> None: ...


class Flusher:
    """Per event loop: the connections pushed to outside their own read, flushed together once per turn."""

    __slots__ = ("_loop", "_dirty", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: list[Flushed] = []

    def add(self, connection: Flushed) -> None:
        if not self._dirty:
            self._loop.call_soon(self._flush_all)
        self._dirty.append(connection)

    def _flush_all(self) -> None:
        dirty, self._dirty = self._dirty, []
        for connection in dirty:
            try:
                connection._flush()
            except (
                Exception
            ):  # one broken transport must not keep the others' frames back
                log.exception("ws flush failed peer=%s", connection.peer)
                connection.abort(INTERNAL_ERROR, "flush failed")


_flushers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Flusher] = (
    weakref.WeakKeyDictionary()
)


def flusher_for(loop: asyncio.AbstractEventLoop) -> Flusher:
    flusher = _flushers.get(loop)
    if flusher is None:
        flusher = _flushers[loop] = Flusher(loop)
    return flusher
