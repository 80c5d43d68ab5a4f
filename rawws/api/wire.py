"""The client's HTTP without I/O: where a URL points, the bytes of a call, the answer read from bytes.

``Exchange`` holds one HTTP/1.1 connection's h11 state: ``request`` turns a call
into the bytes to write, ``receive`` takes whatever bytes came back and returns
the ``Answer`` once it is whole. The asyncio side (``rawws.api.connection``) only
moves bytes, so everything that decides something here is tested with bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import h11

from rawws.api.errors import ApiError, ApiUnreachable

#: An answer bigger than this is not one of ours (a history page is far smaller).
MAX_ANSWER_BYTES = 16 * 1024 * 1024
API_PATH = "/api/v1/"
USER_AGENT = "rawws-api-client"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the calls go: ``https`` or not, host, port, and the path the server is mounted under."""

    tls: bool
    host: str
    port: int
    prefix: str  # "" or "/something", never ending in "/"

    def target(self, call: str) -> str:
        return f"{self.prefix}{API_PATH}{call}"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.tls else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_url(url: str) -> Endpoint:
    """``http://host[:port][/prefix]`` or ``https://…``; a trailing ``/api/v1`` is accepted and dropped."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"not an http:// or https:// URL: {url!r}")
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"a server URL has no query, fragment or user: {url!r}")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    prefix = parts.path.rstrip("/")
    if prefix.endswith(API_PATH.rstrip("/")):
        prefix = prefix[: -len(API_PATH.rstrip("/"))]
    return Endpoint(tls, parts.hostname, port, prefix)


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole HTTP answer: status, headers (names lowercased), body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


def encode_body(fields: dict[str, Any]) -> bytes:
    """A call's JSON body, without the fields left as None (the spec's optional ones)."""
    present = {name: value for name, value in fields.items() if value is not None}
    return json.dumps(present, ensure_ascii=False, separators=(",", ":")).encode()


class Exchange:
    """One keep-alive connection's HTTP state: a request out as bytes, its answer in from bytes."""

    def __init__(self, endpoint: Endpoint, key: str) -> None:
        self.endpoint = endpoint
        self._authorization = f"Bearer {key}"
        self._h11 = h11.Connection(h11.CLIENT)
        self._status = 0
        self._headers: tuple[tuple[str, str], ...] = ()
        self._body = bytearray()

    @property
    def idle(self) -> bool:
        """True when a request may be written now: fresh, or the last answer was whole and kept alive."""
        return self._h11.our_state is h11.IDLE and self._h11.their_state is h11.IDLE

    def request(self, call: str, body: bytes) -> bytes:
        """The bytes of ``POST /api/v1/<call>`` with ``body``; only on an ``idle`` exchange."""
        if not self.idle:
            raise ApiUnreachable("this connection cannot carry another request")
        head = h11.Request(
            method="POST",
            target=self.endpoint.target(call),
            headers=[
                ("Host", self.endpoint.host_header),
                ("User-Agent", USER_AGENT),
                ("Authorization", self._authorization),
                ("Content-Type", "application/json"),
                ("Accept", "application/json"),
                ("Content-Length", str(len(body))),
            ],
        )
        self._status, self._headers, self._body = 0, (), bytearray()
        out = self._h11.send(head) or b""
        out += self._h11.send(h11.Data(data=body)) or b""
        out += self._h11.send(h11.EndOfMessage()) or b""
        return out

    def receive(self, data: bytes) -> Answer | None:
        """Feed bytes read (``b""`` for the end of the stream); the answer once whole, else None.

        Raises ``ApiUnreachable`` if the stream ends before the answer does, or is not HTTP.
        """
        try:
            self._h11.receive_data(data)
            while True:
                event = self._h11.next_event()
                if event is h11.NEED_DATA:
                    if data == b"":
                        raise ApiUnreachable("the server closed the connection")
                    return None
                if isinstance(event, h11.InformationalResponse):
                    continue
                if isinstance(event, h11.Response):
                    self._status = event.status_code
                    self._headers = tuple(
                        (name.decode("latin-1").lower(), value.decode("latin-1"))
                        for name, value in event.headers
                    )
                elif isinstance(event, h11.Data):
                    self._body += event.data
                    if len(self._body) > MAX_ANSWER_BYTES:
                        raise ApiUnreachable("the answer is too big to be the API's")
                elif isinstance(event, h11.EndOfMessage):
                    answer = Answer(self._status, self._headers, bytes(self._body))
                    if self._h11.our_state is h11.DONE and (
                        self._h11.their_state is h11.DONE
                    ):
                        self._h11.start_next_cycle()
                    return answer
                elif isinstance(event, h11.ConnectionClosed):
                    raise ApiUnreachable("the server closed the connection")
                else:  # PAUSED: we never send a second request before the answer
                    raise ApiUnreachable(f"unexpected HTTP event {event!r}")
        except h11.ProtocolError as error:
            if (
                data == b""
            ):  # h11's word for an end of stream in the middle of an answer
                raise ApiUnreachable(
                    "the server closed the connection before its whole answer"
                ) from None
            raise ApiUnreachable(f"not an HTTP answer: {error}") from None


def _retry_after(answer: Answer) -> float | None:
    value = answer.header("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: not one the API sends
    return seconds if seconds >= 0 else None


def parse_answer(answer: Answer) -> dict[str, Any]:
    """The JSON object of a 200; ``ApiError`` for any other status (its JSON error, or the status alone)."""
    payload: Any = None
    try:
        payload = json.loads(answer.body) if answer.body else None
    except (ValueError, RecursionError):
        payload = None
    if answer.status == 200:
        if not isinstance(payload, dict):
            raise ApiError(
                answer.status, "bad_answer", "the answer is not a JSON object"
            )
        return payload
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
        return _raise(
            answer,
            code if isinstance(code, str) else "error",
            message if isinstance(message, str) else "",
        )
    return _raise(answer, f"http_{answer.status}", "the answer has no JSON error")


def _raise(answer: Answer, code: str, message: str) -> dict[str, Any]:
    raise ApiError(answer.status, code, message, _retry_after(answer))
