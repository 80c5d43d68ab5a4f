"""Logging in over HTTP, sans I/O: the ``/auth/login``, ``/auth/refresh`` and ``/auth/ticket`` requests
and their answers.

h11 writes each request and reads its answer; the bytes move elsewhere
(``rawws.chatclient.chat_login``), so the parsing and every refusal are tested
without a socket. A refusal is ``AuthFailed``, whose ``retryable`` tells a
reconnecting client whether to try again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import h11

from rawws.chatclient.target import ChatTarget
from rawws.errors import AuthFailed

LOGIN_PATH = "/auth/login"
TICKET_PATH = "/auth/ticket"
REFRESH_PATH = "/auth/refresh"
MAX_HTTP_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A whole HTTP answer (status, headers, body): the login and ticket requests read nothing else."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> object:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def error_message(self) -> str:
        """The server's ``{"error": {"message"}}``, else the status."""
        payload = self.json()
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            message = payload["error"].get("message")
            if isinstance(message, str) and message:
                return message[:200]
        return f"HTTP {self.status}"


class HttpExchange:
    """One request on its own connection (``Connection: close``): bytes out, bytes in, an ``HttpAnswer``."""

    def __init__(
        self,
        method: str,
        target: str,
        host_header: str,
        body: object | None = None,
        bearer: str | None = None,
    ) -> None:
        payload = b"" if body is None else json.dumps(body).encode("utf-8")
        headers = [
            ("Host", host_header),
            ("Connection", "close"),
            ("Accept", "application/json"),
        ]
        if body is not None:
            headers.append(("Content-Type", "application/json"))
        headers.append(("Content-Length", str(len(payload))))
        if bearer is not None:
            headers.append(("Authorization", f"Bearer {bearer}"))
        self._h11 = h11.Connection(
            h11.CLIENT, max_incomplete_event_size=MAX_HTTP_ANSWER_BYTES
        )
        self._request = (
            self._h11.send(h11.Request(method=method, target=target, headers=headers))
            + self._h11.send(h11.Data(data=payload))
            + self._h11.send(h11.EndOfMessage())
        )
        self._response: h11.Response | None = None
        self._body: list[bytes] = []
        self._size = 0

    def request(self) -> bytes:
        return self._request

    def receive_data(self, data: bytes) -> HttpAnswer | None:
        """Feed what was read (``b""`` at EOF); the answer once it is complete."""
        self._h11.receive_data(data)
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                if not data:  # cut short: a connection problem, worth another attempt
                    raise ConnectionError(
                        "the server closed the connection in the middle of its answer"
                    ) from None
                raise AuthFailed(None, f"malformed HTTP answer: {exc}") from None
            if event is h11.NEED_DATA:
                if not data:
                    raise ConnectionError(
                        "the server closed the connection before answering"
                    )
                return None
            if isinstance(event, h11.Response):
                self._response = event
            elif isinstance(event, h11.Data):
                self._size += len(event.data)
                if self._size > MAX_HTTP_ANSWER_BYTES:
                    raise AuthFailed(None, "HTTP answer too large")
                self._body.append(bytes(event.data))
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                if self._response is None:
                    raise ConnectionError(
                        "the server closed the connection before answering"
                    )
                headers = [
                    (name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in self._response.headers
                ]
                return HttpAnswer(
                    self._response.status_code, headers, b"".join(self._body)
                )


def login_exchange(target: ChatTarget, user: str, password: str) -> HttpExchange:
    """``POST /auth/login``: the password goes in the body, never in a URL that might be logged."""
    return HttpExchange(
        "POST", LOGIN_PATH, target.host_header, {"username": user, "password": password}
    )


def ticket_exchange(target: ChatTarget, token: str) -> HttpExchange:
    """``POST /auth/ticket``: a single-use ticket for one WebSocket, so the token itself never goes in a URL."""
    return HttpExchange("POST", TICKET_PATH, target.host_header, bearer=token)


def refresh_exchange(target: ChatTarget, refresh_token: str) -> HttpExchange:
    return HttpExchange(
        "POST", REFRESH_PATH, target.host_header, {"refresh_token": refresh_token}
    )


@dataclass(frozen=True, slots=True)
class Tokens:
    """What ``/auth/login`` and ``/auth/refresh`` hand back: the access token, its lifetime, the next refresh token."""

    access_token: str
    expires_in: float
    refresh_token: str | None


def tokens_of(answer: HttpAnswer) -> Tokens:
    """The tokens of a login or refresh answer, or ``AuthFailed`` (a server without refresh tokens gives ``None``)."""
    token = _field(answer, "access_token", "login refused")
    payload = answer.json()
    assert isinstance(payload, dict)
    expires_in = payload.get("expires_in")
    refresh = payload.get("refresh_token")
    return Tokens(
        token,
        float(expires_in)
        if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool)
        else 0.0,
        refresh if isinstance(refresh, str) and refresh else None,
    )


def access_token(answer: HttpAnswer) -> str:
    """The token of a ``/auth/login`` answer, or ``AuthFailed``."""
    return _field(answer, "access_token", "login refused")


def ticket(answer: HttpAnswer) -> str:
    """The ticket of a ``/auth/ticket`` answer, or ``AuthFailed``."""
    return _field(answer, "ticket", "ticket refused")


def _field(answer: HttpAnswer, name: str, what: str) -> str:
    if answer.status != 200:
        raise AuthFailed(
            answer.status, f"{what}: HTTP {answer.status}: {answer.error_message()}"
        )
    payload = answer.json()
    value = payload.get(name) if isinstance(payload, dict) else None
    if not isinstance(value, str) or not value:
        raise AuthFailed(None, f"{what}: the answer has no {name}")
    return value
