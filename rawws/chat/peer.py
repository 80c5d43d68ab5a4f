"""What the chat needs from one connection: the ``Peer`` protocol.

The chat never sees a socket, a transport or an outbox: it queues text, asks
whether the connection can take more, and waits until it can. The server's
``ServerConnection`` is one ``Peer``; tests use small fakes.
"""

from __future__ import annotations

from typing import Protocol


class Peer(Protocol):
    @property
    def user(self) -> str | None:
        """Who the credential says this is (``None`` on unauthenticated endpoints)."""
        ...

    @property
    def identity(self) -> object:
        """What the authenticator returned for it (``accounts.tokens.Identity`` on `/ws`)."""
        ...

    def close(self, code: int, reason: str) -> object:
        """Start the closing handshake with ``code`` and ``reason`` (an account stopped: 1008)."""
        ...

    @property
    def open(self) -> bool:
        """Still open and not closed for being too slow: sending makes sense."""
        ...

    @property
    def backed_up(self) -> bool:
        """Its queue is half full while its socket is still draining: wait before a burst."""
        ...

    def send_nowait(self, message: str) -> bool:
        """Queue one message; ``False`` when the connection is closing or was too slow."""
        ...

    def send_shared(self, text: str, frame: bytes) -> bool:
        """Queue ``text`` that was framed once for many receivers as ``frame``.

        The peer decides which bytes fit it: the plain frame, the compressed frame a
        ``rawws.core.deflate.SharedFrame`` builds once per window size for every
        receiver in shared compression, or (with a compression context of its own)
        ``text`` encoded by itself.
        """
        ...

    async def wait_writable(self) -> None:
        """Return once the socket drains again (at once if it is not backed up)."""
        ...
