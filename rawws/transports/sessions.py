"""Every SSE and long-polling session on this node: opened, found for a request, swept, ended.

A session is opened as a WebSocket is accepted: its credential checked by the
same authenticator (Origin, token or ticket, a stopped account, the app's
``connect`` hook), counted against the same per-user and per-address limits,
and handed to the chat's handler. Then its position (``Last-Event-ID``) is
joined again room by room through the chat's own join, doors included.

A request naming a session finds it only if it is on this node, open and the
credential's user's: every other case is the same 404, so no one learns
whether another user's session exists.

A session's id begins with its node's tag. Commands posted to another node of
the cluster (a load balancer without stickiness) are forwarded over the bus to
the node the tag names, which runs them only for a session of its own that is
that user's: an SSE session needs no sticky routing.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from typing import Protocol

from rawws.accounts.tokens import Identity
from rawws.chat.codec import Commands
from rawws.chat.peer import Peer
from rawws.chat.service import ChatHandler
from rawws.chat.wire import dumps, error
from rawws.config import ServerConfig
from rawws.core.counters import Counters
from rawws.errors import HttpError
from rawws.server.streamed import ResponseStream
from rawws.transports.position import BadPosition, parse_position
from rawws.transports.session import HEARTBEAT_S, POLL, Session

#: Seconds a long-polling session lives with no poll: a few missed polls, not a lost client's rooms.
POLL_IDLE_S = 30.0
#: How often idle and finished sessions are looked for.
SWEEP_S = 5.0
BAD_POSITION = "bad_position"
NO_SUCH_SESSION = "no_such_session"


class PeerHandler(Protocol):
    """The chat's side of a connection (``ChatHandler``, or it with the disconnect hook)."""

    def on_open(self, peer: Peer) -> None: ...

    def on_message(self, peer: Peer, data: str | bytes) -> None: ...

    def on_close(self, peer: Peer, code: int) -> None: ...


def no_such_session() -> HttpError:
    return HttpError(404, "no such session", code=NO_SUCH_SESSION)


class Sessions:
    """This node's sessions by id; ``open``, ``find``, and the sweep that ends idle ones."""

    def __init__(
        self,
        chat: ChatHandler,
        handler: PeerHandler,
        config: ServerConfig,
        counters: Counters,
    ) -> None:
        self.chat = chat
        self.handler = handler
        self.config = config
        self.counters = counters
        #: The first part of every session id made here: where ``POST /send`` forwards to.
        self.tag = secrets.token_hex(4)
        #: Commands for another node's session go over the bus; ``None`` on a lone node.
        self.forward: Callable[[str, str, list[str]], None] | None = None
        self._sessions: dict[str, Session] = {}
        self._releases: dict[str, Callable[[], None]] = {}
        self._sweep: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._sessions)

    def open(
        self,
        transport: str,
        identity: Identity,
        release: Callable[[], None],
        last_event_id: str | None,
    ) -> Session:
        """A new session for ``identity`` (its limit slot is ``release``), resumed at ``last_event_id``."""
        config = self.config
        session = Session(
            f"{self.tag}.{secrets.token_urlsafe(16)}",
            transport,
            identity,
            max_bytes=config.outbox_max_bytes,
            max_messages=config.outbox_max_messages,
            high_water=config.write_high_water_bytes,
            counters=self.counters,
            on_closed=self._closed,
        )
        self._sessions[session.id] = session
        self._releases[session.id] = release
        bad = None
        try:
            position = parse_position(
                last_event_id or "", config.chat_max_rooms_per_connection
            )
        except BadPosition as refused:
            position, bad = {}, refused
        # Where each room resumes, before the first event: every ``id:`` carries it, so a stream
        # cut before the rooms are joined again leaves the client the position it came with.
        session.last_ids.update(position)
        session.send_nowait(
            dumps(
                {
                    "type": "session",
                    "session": session.id,
                    "transport": transport,
                    "heartbeat": HEARTBEAT_S,
                }
            )
        )
        if bad is not None:
            session.send_nowait(error(BAD_POSITION, f"{bad}: starting afresh"))
        self.handler.on_open(session)
        for room, since in position.items():
            self.chat.rejoin(session, room, since)
        self._start_sweep()
        return session

    def find(self, session_id: str | None, identity: Identity) -> Session:
        """The open session ``session_id`` of ``identity``'s user on this node, else 404."""
        session = self._sessions.get(session_id or "")
        if session is None or session.user != identity.user:
            raise no_such_session()
        return session

    def elsewhere(self, session_id: str) -> bool:
        """``session_id`` names another node's session and could be forwarded there."""
        tag, dot, _ = session_id.partition(".")
        return self.forward is not None and bool(dot) and tag != self.tag

    def run_forwarded(self, commands: Commands) -> None:
        """Another node took ``commands`` for a session here: run them if it is that user's."""
        session = self._sessions.get(commands.session)
        if session is None or session.user != commands.user or not session.open:
            return
        for text in commands.texts:
            self.handler.on_message(session, text)

    def _closed(self, session: Session, code: int) -> None:
        """The session closed: the chat forgets it and its limit slot is free. A poll session
        stays findable until its ``closed`` event is fetched (or it idles out)."""
        release = self._releases.pop(session.id, None)
        if release is not None:
            release()
        self.handler.on_close(session, code)
        if session.transport != POLL:
            self._sessions.pop(session.id, None)

    def forget(self, session: Session) -> None:
        """A finished session's record goes (its last events were fetched)."""
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]

    def stop_all(self) -> None:
        """The server is stopping: every session ends with ``closed 1001``."""
        for session in list(self._sessions.values()):
            session.close(1001, "server shutting down")
            session.stop_waiting()

    def _start_sweep(self) -> None:
        if self._sweep is None or self._sweep.done():
            self._sweep = asyncio.get_running_loop().create_task(self._sweeping())

    async def _sweeping(self) -> None:
        while self._sessions:
            await asyncio.sleep(SWEEP_S)
            now = time.monotonic()
            for session in list(self._sessions.values()):
                if session.transport == POLL and now - session.last_poll > POLL_IDLE_S:
                    if session.open:
                        session.close(1006, "no poll")
                    self.forget(session)

    async def close(self) -> None:
        self.stop_all()
        if self._sweep is not None:
            self._sweep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweep


async def pump_stream(
    sessions: Sessions, session: Session, stream: ResponseStream
) -> None:
    """An SSE session's life: its events written until the stream or the session ends."""
    await session.pump(stream)
    session.close(1006, "stream ended")  # (closed already, unless the client went away)
    sessions.forget(session)
