"""The frames `rawws chat` has to send, sent one by one no faster than the server takes them.

Every frame goes through here (the server counts every frame), in order, each
when ``rawws.chatclient.pacing.Pacer`` has a token for it: a pasted or piped
block of lines waits here instead of being dropped by the server. Says the
server did not store go first (``put_first``), ahead of lines still waiting.

A frame counts as sent (``on_sent``) once the connection took it; when the
connection drops, whatever still waits is dropped here (``detach``): the
chat state makes the joins anew and keeps the says it never saw sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterable

from rawws.chatclient.pacing import Pacer, RateLimits
from rawws.client.connection import ClientConnection
from rawws.errors import ConnectionClosed


class Outbox:
    """One queue of frames across connections; one sending task, paced per connection."""

    def __init__(self, on_sent: Callable[[str], None]) -> None:
        self.on_sent = on_sent
        self.pacer = Pacer()
        self.progress = asyncio.Event()  # set whenever a frame went out
        self._frames: deque[str] = deque()
        self._ws: ClientConnection | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def empty(self) -> bool:
        return not self._frames

    def attach(self, ws: ClientConnection) -> None:
        """A new connection: a fresh bucket (the server gives each connection its own)."""
        self._ws = ws
        self.pacer.reset(_now())
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        self._wake.set()

    def detach(self) -> None:
        """The connection is gone: nothing waiting is sent on it (nor on the next one)."""
        self._ws = None
        self._frames.clear()

    def configure(self, limits: RateLimits) -> None:
        """The ``welcome``'s figures."""
        self.pacer.configure(limits, _now())
        self._wake.set()  # a wait for the unknown figures' token may be over

    def throttled(self) -> None:
        """The server dropped frames: its bucket is empty, so ours is too."""
        self.pacer.tokens = min(self.pacer.tokens, 0.0)

    def put(self, frames: Iterable[str]) -> None:
        self._frames.extend(frames)
        self._wake.set()

    def put_first(self, frames: list[str]) -> None:
        self._frames.extendleft(reversed(frames))
        self._wake.set()

    async def _run(self) -> None:
        while True:
            ws = self._ws
            if ws is None or not self._frames:
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = self.pacer.delay(_now())
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue  # the connection, the queue or the figures may have changed
            frame = self._frames.popleft()
            self.pacer.take(_now())
            try:
                await ws.send(frame)
            except ConnectionClosed:
                continue  # the receiver reports the close; the state keeps unsent says
            self.on_sent(frame)
            self.progress.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _now() -> float:
    return asyncio.get_running_loop().time()
