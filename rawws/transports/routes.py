"""``GET /sse``, ``GET /poll`` and ``POST /send``: the HTTP side of the sessions (docs/transports.md).

Each request is authorized here, in one place per route, before anything is
done for it: the credential (a bearer header or a single-use ticket; a token
in a URL is refused, since proxies log URLs), the Origin, then the session it
names, which must be this user's. A new session is also counted against the
user's connection limit. A command sent with ``POST /send`` then goes through
the chat's ``on_message`` as a WebSocket frame would: its rate, its parse, its
authorization in ``rawws.chat.access``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rawws.accounts.routes import read_json_object
from rawws.accounts.tokens import Identity
from rawws.chat.wire import MAX_FRAME_BYTES, dumps
from rawws.core.http import Request, Response, json_response
from rawws.errors import AuthError, HttpError
from rawws.server.server import Server
from rawws.server.streamed import ResponseStream, StreamedResponse
from rawws.transports.session import POLL, SSE
from rawws.transports.sessions import Sessions, no_such_session, pump_stream

#: The most commands one ``POST /send`` carries (each also pays its frame token).
MAX_COMMANDS = 32
#: The longest a poll waits for something, seconds (under common proxies' 30 s or 60 s timeouts).
MAX_POLL_WAIT_S = 25.0
SSE_HEADERS = [
    ("Content-Type", "text/event-stream; charset=utf-8"),
    ("Cache-Control", "no-cache, no-transform"),
    ("X-Accel-Buffering", "no"),  # nginx: pass each event at once
]
Authenticate = Callable[[Request], "Identity | Awaitable[Identity]"]


@dataclass(frozen=True, slots=True)
class TransportRoutes:
    """The three routes over one node's ``Sessions``.

    ``opening`` checks the credential of a request that opens a session (the app's
    ``connect`` hook included); ``acting`` that of one that uses a session.
    """

    server: Server
    sessions: Sessions
    opening: Authenticate
    acting: Authenticate

    def add_to(self, server: Server) -> None:
        server.router.add("GET", "/sse", self.sse)
        server.router.add("GET", "/poll", self.poll)
        server.router.add("POST", "/send", self.send)

    async def sse(self, request: Request) -> Response:
        identity, release = await self._open(request)
        session = self.sessions.open(SSE, identity, release, _last_event_id(request))

        async def produce(stream: ResponseStream) -> None:
            await pump_stream(self.sessions, session, stream)

        return StreamedResponse(200, list(SSE_HEADERS), produce=produce)

    async def poll(self, request: Request) -> Response:
        session_id = request.query_param("session")
        if session_id is None:
            identity, release = await self._open(request)
            session = self.sessions.open(
                POLL, identity, release, _last_event_id(request)
            )
            ack, wait_s = 0, 0.0
        else:
            identity = await _identity(self.acting, request)
            session = self.sessions.find(session_id, identity)
            ack = _whole(request.query_param("ack") or "0", "ack")
            wait_s = _wait(request.query_param("wait"))
            if session.polled_out:
                self.sessions.forget(session)
                raise no_such_session()
        events, cursor, position = await session.poll(ack, wait_s)
        if session.polled_out:
            self.sessions.forget(session)
        head = dumps({"session": session.id, "cursor": cursor, "position": position})
        body = f'{head[:-1]},"events":[{",".join(events)}]}}'.encode()
        return Response(
            200,
            [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
            body,
        )

    async def send(self, request: Request) -> Response:
        identity = await _identity(self.acting, request)
        session_id, commands = _commands(request)
        sessions = self.sessions
        if sessions.elsewhere(
            session_id
        ):  # the node that holds it runs them, if it is theirs
            assert sessions.forward is not None
            sessions.forward(session_id, identity.user, commands)
            return json_response(202, {"accepted": len(commands), "forwarded": True})
        session = sessions.find(session_id, identity)
        if not session.open:
            raise no_such_session()
        for text in commands:
            self.sessions.handler.on_message(session, text)
        return json_response(202, {"accepted": len(commands)})

    async def _open(self, request: Request) -> tuple[Identity, Callable[[], None]]:
        """A new session's credential and limit slot (503 while the server stops)."""
        if self.server.shutting_down:
            raise HttpError(503, "server shutting down")
        identity = await _identity(self.opening, request)
        release = await self.server.limits.admit_everywhere(identity.user, request.peer)
        return identity, release


async def _identity(authenticate: Authenticate, request: Request) -> Identity:
    if request.query_param("token") is not None:
        raise AuthError("a token in a URL is refused: send Authorization: Bearer")
    identity = authenticate(request)
    if inspect.isawaitable(identity):
        identity = await identity
    return identity


def _last_event_id(request: Request) -> str | None:
    """The position to resume at: the browser's ``Last-Event-ID``, or the query's for clients
    that cannot set the header."""
    header = request.header("last-event-id")
    return header if header is not None else request.query_param("last_event_id")


def _whole(text: str, name: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise HttpError(400, f"{name} must be a whole number")
    return int(text)


def _wait(text: str | None) -> float:
    if text is None:
        return MAX_POLL_WAIT_S
    try:
        wait_s = float(text)
    except ValueError:
        raise HttpError(400, "wait must be a number of seconds") from None
    if not 0 <= wait_s <= MAX_POLL_WAIT_S:
        raise HttpError(400, f"wait must be from 0 to {MAX_POLL_WAIT_S:g} seconds")
    return wait_s


def _commands(request: Request) -> tuple[str, list[str]]:
    """``{"session": id, "commands": [...]}``: the id and each command as the text a frame
    would carry; 415 unless JSON, 400 for any other shape, 413 for a command over a frame's limit."""
    payload = read_json_object(request)  # a form another site posts is not JSON: 415
    if set(payload) != {"session", "commands"}:
        raise HttpError(400, 'the body is {"session": ..., "commands": [...]}')
    session_id, commands = payload["session"], payload["commands"]
    if not isinstance(session_id, str) or not isinstance(commands, list):
        raise HttpError(400, "session is a string and commands a list")
    if not 1 <= len(commands) <= MAX_COMMANDS:
        raise HttpError(400, f"from 1 to {MAX_COMMANDS} commands")
    texts = []
    for command in commands:
        if not isinstance(command, dict):
            raise HttpError(400, "each command is an object")
        text = dumps(command)
        try:
            size = len(text.encode())
        except UnicodeEncodeError:  # a lone surrogate: no UTF-8 frame could carry it
            raise HttpError(400, "a command is not valid Unicode") from None
        if size > MAX_FRAME_BYTES:
            raise HttpError(413, f"a command has at most {MAX_FRAME_BYTES} bytes")
        texts.append(text)
    return session_id, texts
