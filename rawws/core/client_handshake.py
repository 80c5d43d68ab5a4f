"""The client's side of the opening handshake (RFC 6455 §4.1, RFC 7692 §7.1): request out, response in, no I/O.

``ClientHandshake.request()`` gives the upgrade request's bytes (h11 writes
them, with a fresh random key). Bytes of the answer go to ``receive_data``
until it returns a ``ClientUpgrade``; every byte after the 101 is kept in
``trailing_data`` because the server may send its first frame in the same
packet as its answer. Anything else ends in an exception:

* ``HandshakeRejected``: the server answered with an HTTP status other than
  101 (a 401, a 404, a redirect); status, headers and body are on it;
* ``InvalidHandshake``: a 101 we must not accept (wrong ``Sec-WebSocket-Accept``,
  no ``Upgrade: websocket``, an extension or subprotocol we did not offer,
  permessage-deflate parameters RFC 7692 does not allow), or no answer at all.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import h11
from wsproto.extensions import Extension

from rawws._version import __version__
from rawws.core.extensions import ZLIB_MIN_WINDOW_BITS, PerMessageDeflate
from rawws.core.handshake import DEFLATE, KEY_BYTES, WEBSOCKET_VERSION, accept_key
from rawws.core.headers import comma_list, get_all, parse_extension, tokens
from rawws.errors import (
    HandshakeRejected,
    HeaderSyntaxError,
    InvalidHandshake,
    InvalidURI,
)

# Limits
MAX_RESPONSE_HEAD_BYTES = 16 * 1024  # status line + headers of the server's answer
MAX_REJECTION_BODY_BYTES = 64 * 1024  # a refusal's body is kept up to this many bytes

#: What we offer: permessage-deflate, and the server may limit our window (RFC 7692 §7.1.2.2).
DEFLATE_OFFER = f"{DEFLATE}; client_max_window_bits"
USER_AGENT = f"rawws/{__version__}"

_WINDOW_BITS = re.compile(r"8|9|1[0-5]")  # RFC 7692 §7.1.2: 8..15, no leading zero
_TARGET_SAFE = "!#$%&'()*+,/:;=?@[]~"
_HEADERS_WE_WRITE = {
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
    "sec-websocket-accept",
    "content-length",
    "transfer-encoding",
}


@dataclass(frozen=True, slots=True)
class WebSocketURI:
    """Where to connect: a ``ws://`` or ``wss://`` URL split into what the socket and request need."""

    secure: bool
    host: str
    port: int
    target: str  # path and query, what goes on the request line

    @property
    def host_header(self) -> str:
        """``Host`` as RFC 7230 §5.4 wants it: the port only when it is not the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default_port = 443 if self.secure else 80
        return host if self.port == default_port else f"{host}:{self.port}"

    @property
    def display(self) -> str:
        """Scheme, host, port and path, without the query (which may hold a token)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = self.target.partition("?")[0]
        return f"{'wss' if self.secure else 'ws'}://{host}:{self.port}{path}"


def parse_uri(uri: str) -> WebSocketURI:
    """Split a WebSocket URL (RFC 6455 §3); raise ``InvalidURI`` for anything else."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise InvalidURI(f"{uri!r} is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        raise InvalidURI(f"{uri!r} is not a ws:// or wss:// URL")
    if not parts.hostname:
        raise InvalidURI(f"{uri!r} has no host")
    if parts.fragment or uri.endswith("#"):
        raise InvalidURI(f"{uri!r} has a fragment, which WebSocket URLs must not have")
    if parts.username is not None or parts.password is not None:
        raise InvalidURI(f"{uri!r} has user info; send credentials in a header instead")
    secure = scheme == "wss"
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    target = quote(target, safe=_TARGET_SAFE)  # only non-ASCII and spaces are escaped
    return WebSocketURI(
        secure,
        parts.hostname,
        port if port is not None else (443 if secure else 80),
        target,
    )


def new_key() -> str:
    """A fresh ``Sec-WebSocket-Key``: 16 random bytes, base64 (RFC 6455 §4.1 item 7)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


@dataclass(frozen=True, slots=True)
class ClientUpgrade:
    """A 101 we accept: what to run the WebSocket with, and the bytes that came after it."""

    headers: list[tuple[str, str]]
    extensions: list[Extension]
    subprotocol: str | None
    #: The negotiated ``Sec-WebSocket-Extensions`` value, or ``None`` when uncompressed.
    compression: str | None
    #: The largest message we accept (``None``: no limit), for the WebSocket's constructor.
    max_message_bytes: int | None = None
    #: Bytes after the 101 (the first frames): feed them to the WebSocket first.
    trailing_data: bytes = field(default=b"", repr=False)


class ClientHandshake:
    """One opening handshake from the client's side, over h11."""

    def __init__(
        self,
        uri: WebSocketURI,
        *,
        subprotocols: Sequence[str] = (),
        extra_headers: Sequence[tuple[str, str]] = (),
        compression: bool = True,
        max_message_bytes: int | None = None,
        key: str | None = None,
    ) -> None:
        for name, _ in extra_headers:
            if name.lower() in _HEADERS_WE_WRITE:
                raise ValueError(f"header {name!r} is set by the handshake itself")
        self.uri = uri
        self.subprotocols = tuple(subprotocols)
        self.extra_headers = list(extra_headers)
        self.compression = compression
        self.max_message_bytes = max_message_bytes
        self.key = key if key is not None else new_key()
        self._h11 = h11.Connection(
            h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD_BYTES
        )
        self._rejection: h11.Response | None = None
        self._rejection_body: list[bytes] = []
        self._rejection_bytes = 0

    def request(self) -> bytes:
        """The upgrade request, ready to write."""
        given = {name.lower() for name, _ in self.extra_headers}
        headers: list[tuple[str, str]] = []
        if "host" not in given:
            headers.append(("Host", self.uri.host_header))
        headers += [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", self.key),
            ("Sec-WebSocket-Version", WEBSOCKET_VERSION),
        ]
        if self.subprotocols:
            headers.append(("Sec-WebSocket-Protocol", ", ".join(self.subprotocols)))
        if self.compression:
            headers.append(("Sec-WebSocket-Extensions", DEFLATE_OFFER))
        if "user-agent" not in given:
            headers.append(("User-Agent", USER_AGENT))
        headers += self.extra_headers
        request = h11.Request(method="GET", target=self.uri.target, headers=headers)
        return self._h11.send(request) + self._h11.send(h11.EndOfMessage())

    def receive_data(self, data: bytes) -> ClientUpgrade | None:
        """Feed the server's bytes; the accepted upgrade once the 101 is in, ``None`` while more is needed."""
        self._h11.receive_data(data)
        return self._next()

    def receive_eof(self) -> ClientUpgrade | None:
        """The server closed TCP: that ends a refusal's body, or the handshake with an error."""
        self._h11.receive_data(b"")
        try:
            result = self._next()
        except HandshakeRejected:
            raise
        except InvalidHandshake:
            result = (
                None  # h11 objects to the cut-short answer; say what happened instead
            )
        if self._rejection is not None:
            self._reject()  # the body was cut short: report the refusal with what came
        if result is None:
            raise InvalidHandshake(
                "the server closed the connection before answering the upgrade"
            )
        return result

    def _next(self) -> ClientUpgrade | None:
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise InvalidHandshake(
                    f"malformed HTTP answer to the upgrade: {exc}"
                ) from None
            if event is h11.NEED_DATA:
                return None
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    return self._accept(event)
                continue  # e.g. 100 Continue: the real answer follows
            if isinstance(event, h11.Response):
                self._rejection = event
            elif isinstance(event, h11.Data):
                self._keep_body(event.data)
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                self._reject()

    def _keep_body(self, data: bytes) -> None:
        room = MAX_REJECTION_BODY_BYTES - self._rejection_bytes
        self._rejection_body.append(data[:room])
        self._rejection_bytes += min(len(data), room)
        if self._rejection_bytes >= MAX_REJECTION_BODY_BYTES:
            self._reject()  # enough to show; the rest does not matter

    def _reject(self) -> None:
        response = self._rejection
        if response is None:
            raise InvalidHandshake(
                "the server closed the connection before answering the upgrade"
            )
        raise HandshakeRejected(
            response.status_code,
            response.reason.decode("latin-1"),
            _decoded(response.headers),
            b"".join(self._rejection_body),
        )

    def _accept(self, response: h11.InformationalResponse) -> ClientUpgrade:
        """RFC 6455 §4.1, the client's checks of a 101, then RFC 7692 §7.1 for the extension."""
        headers = list(response.headers)
        if "websocket" not in tokens(get_all(headers, b"upgrade")):
            raise InvalidHandshake("the 101 answer has no 'Upgrade: websocket'")
        if "upgrade" not in tokens(get_all(headers, b"connection")):
            raise InvalidHandshake("the 101 answer has no 'Connection: Upgrade'")
        accepts = [value.strip() for value in get_all(headers, b"sec-websocket-accept")]
        if accepts != [accept_key(self.key)]:
            raise InvalidHandshake(
                "the 101 answer's Sec-WebSocket-Accept does not match our key"
            )
        subprotocol = self._check_subprotocol(headers)
        extensions: list[Extension] = []
        compression = None
        deflate = self._check_extensions(headers)
        if deflate is not None:
            extension, compression = deflate
            extensions.append(extension)
        trailing, _ = self._h11.trailing_data
        return ClientUpgrade(
            _decoded(headers),
            extensions,
            subprotocol,
            compression,
            self.max_message_bytes,
            bytes(trailing),
        )

    def _check_subprotocol(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        chosen = comma_list(get_all(headers, b"sec-websocket-protocol"))
        if not chosen:
            return None  # the server may speak none of ours; the application decides
        if len(chosen) > 1:
            raise InvalidHandshake(
                f"the server chose several subprotocols: {', '.join(chosen)}"
            )
        if chosen[0] not in self.subprotocols:
            raise InvalidHandshake(
                f"the server chose subprotocol {chosen[0]!r}, which we did not offer"
            )
        return chosen[0]

    def _check_extensions(
        self, headers: list[tuple[bytes, bytes]]
    ) -> tuple[PerMessageDeflate, str] | None:
        try:
            answers = [
                parse_extension(item)
                for item in comma_list(get_all(headers, b"sec-websocket-extensions"))
            ]
        except HeaderSyntaxError as exc:
            raise InvalidHandshake(
                f"bad Sec-WebSocket-Extensions in the 101 answer: {exc}"
            ) from None
        if not answers:
            return None
        if not self.compression or any(name != DEFLATE for name, _ in answers):
            names = ", ".join(name for name, _ in answers)
            raise InvalidHandshake(
                f"the server accepted extensions we did not offer: {names}"
            )
        if len(answers) > 1:
            raise InvalidHandshake(
                "the server accepted permessage-deflate more than once"
            )
        return deflate_from_answer(answers[0][1], self.max_message_bytes)


def deflate_from_answer(
    params: list[tuple[str, str | None]], max_message_bytes: int | None
) -> tuple[PerMessageDeflate, str]:
    """Configure permessage-deflate from the server's answer to ``DEFLATE_OFFER`` (RFC 7692 §7.1).

    Returns the extension and the answer in normal form. Unknown or repeated
    parameters, a value where none belongs, or window bits outside 8..15 fail
    the handshake. ``server_max_window_bits`` may appear unasked (§7.1.2.1);
    any value is fine for inflating since a larger window reads a smaller one.
    ``client_max_window_bits=8`` is valid but zlib cannot deflate with it, so
    we must refuse the connection rather than break the limit.
    """
    seen: set[str] = set()
    server_no_context_takeover = client_no_context_takeover = False
    server_bits: int | None = None
    client_bits: int | None = None
    for key, value in params:
        if key in seen:
            raise InvalidHandshake(f"permessage-deflate parameter {key} is repeated")
        seen.add(key)
        if key in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:
                raise InvalidHandshake(
                    f"permessage-deflate parameter {key} takes no value"
                )
            if key == "server_no_context_takeover":
                server_no_context_takeover = True
            else:
                client_no_context_takeover = True
        elif key in ("server_max_window_bits", "client_max_window_bits"):
            if value is None or _WINDOW_BITS.fullmatch(value) is None:
                raise InvalidHandshake(
                    f"permessage-deflate {key}={value} is not a window size of 8 to 15"
                )
            if key == "server_max_window_bits":
                server_bits = int(value)
            else:
                client_bits = int(value)
        else:
            raise InvalidHandshake(
                f"permessage-deflate parameter {key} was not offered"
            )
    if client_bits is not None and client_bits < ZLIB_MIN_WINDOW_BITS:
        raise InvalidHandshake(
            f"cannot compress with client_max_window_bits={client_bits} (zlib needs 9 or more)"
        )

    answer = [DEFLATE]
    if server_no_context_takeover:
        answer.append("server_no_context_takeover")
    if client_no_context_takeover:
        answer.append("client_no_context_takeover")
    if server_bits is not None:
        answer.append(f"server_max_window_bits={server_bits}")
    if client_bits is not None:
        answer.append(f"client_max_window_bits={client_bits}")
    negotiated = "; ".join(answer)

    extension = PerMessageDeflate(
        max_message_bytes=max_message_bytes,
        server_no_context_takeover=server_no_context_takeover,
        client_no_context_takeover=client_no_context_takeover,
        client_max_window_bits=client_bits,
        # wsproto's settings need 9..15; inflating with a window at least as large as the server's is exact.
        server_max_window_bits=None
        if server_bits is None
        else max(server_bits, ZLIB_MIN_WINDOW_BITS),
    )
    extension.finalize(
        DEFLATE
    )  # marks it negotiated; the settings are already in place
    return extension, negotiated


def _decoded(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in headers
    ]
