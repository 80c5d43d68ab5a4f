"""The server's side of the opening handshake (RFC 6455 §4.2): request in, 101 or an HTTP error out.

Every refusal is an ``HttpError`` carrying the status the RFC asks for, so the
edge answers it over HTTP and never sends a 101 followed by a close.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from wsproto.extensions import Extension

from rawws.core.deflate import (
    DEFAULT_MEMORY_LEVEL,
    DEFAULT_WINDOW_BITS,
    OFF,
    SHARED,
    compression_mode,
)
from rawws.core.extensions import (
    ZLIB_MAX_WINDOW_BITS,
    ZLIB_MIN_WINDOW_BITS,
    PerMessageDeflate,
)
from rawws.core.headers import by_name, comma_list, parse_extension, tokens
from rawws.core.http import Request
from rawws.errors import HeaderSyntaxError, HttpError

WEBSOCKET_VERSION = "13"
ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
KEY_BYTES = 16  # the nonce inside Sec-WebSocket-Key

_UPGRADE_REQUIRED_HEADERS = [
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Version", WEBSOCKET_VERSION),
]

DEFLATE = "permessage-deflate"
_NO_VALUE_PARAMS = {"server_no_context_takeover", "client_no_context_takeover"}
_NONE: list[str] = []  # the values of a header that is absent (never mutated)


@dataclass(frozen=True, slots=True)
class UpgradePolicy:
    """What this endpoint accepts: its subprotocols, compression, and the message size limit.

    ``compression`` is ``shared``, ``dedicated`` or ``off`` (``rawws.core.deflate``; a bool
    means shared/off); ``window_bits`` and ``memory_level`` bound what a compressed
    connection may use (the client's own offer can only lower the window).
    """

    max_message_bytes: int
    compression: str | bool = SHARED
    subprotocols: tuple[str, ...] = ()
    window_bits: int = DEFAULT_WINDOW_BITS
    memory_level: int = DEFAULT_MEMORY_LEVEL

    def __post_init__(self) -> None:
        object.__setattr__(self, "compression", compression_mode(self.compression))
        if not ZLIB_MIN_WINDOW_BITS <= self.window_bits <= ZLIB_MAX_WINDOW_BITS:
            raise ValueError(
                f"window bits must be {ZLIB_MIN_WINDOW_BITS}..{ZLIB_MAX_WINDOW_BITS}"
            )
        if not 1 <= self.memory_level <= 9:
            raise ValueError("memory level must be 1..9")


@dataclass(frozen=True, slots=True)
class AcceptedUpgrade:
    """The 101 answer's headers and the extensions to run the connection with."""

    headers: list[tuple[str, str]]
    extensions: list[Extension]
    subprotocol: str | None
    #: The largest message the connection accepts (after inflation): a constructor argument of the WebSocket.
    max_message_bytes: int


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2 step 5.4)."""
    digest = hashlib.sha1(key.encode("ascii") + ACCEPT_GUID).digest()
    return base64.b64encode(digest).decode("ascii")


def is_upgrade_request(request: Request) -> bool:
    """Does the request ask to switch protocols at all (any ``Upgrade`` header)?"""
    return request.header("upgrade") is not None


def decide_upgrade(request: Request, policy: UpgradePolicy) -> AcceptedUpgrade:
    """Check a request to a WebSocket path; raise ``HttpError`` with the right status when it fails."""
    try:
        return _decide(request, policy)
    except (
        HeaderSyntaxError
    ) as exc:  # e.g. an unterminated quoted string in a comma list
        raise HttpError(400, f"malformed header: {exc}") from None


def _decide(request: Request, policy: UpgradePolicy) -> AcceptedUpgrade:
    if request.method != "GET":
        raise HttpError(405, "a WebSocket handshake must be a GET", [("Allow", "GET")])
    values = by_name(
        request.headers
    )  # one pass: every check below looks at a header or two
    if b"upgrade" not in values:
        raise HttpError(
            426, "this resource speaks WebSocket only", _UPGRADE_REQUIRED_HEADERS
        )
    if request.http_version != b"1.1":
        raise HttpError(400, "a WebSocket handshake needs HTTP/1.1")
    if "websocket" not in tokens(values[b"upgrade"]):
        raise HttpError(400, "Upgrade header must name websocket")
    if "upgrade" not in tokens(values.get(b"connection", _NONE)):
        raise HttpError(400, "Connection header must include Upgrade")
    versions = values.get(b"sec-websocket-version")
    if not versions:
        raise HttpError(
            400,
            "Sec-WebSocket-Version is required",
            [("Sec-WebSocket-Version", WEBSOCKET_VERSION)],
        )
    if len(versions) != 1 or versions[0].strip() != WEBSOCKET_VERSION:
        # RFC 6455 §4.4 names the versions we speak; RFC 7231 §6.5.15 wants Upgrade on a 426.
        raise HttpError(426, "unsupported WebSocket version", _UPGRADE_REQUIRED_HEADERS)
    key = _valid_key(values.get(b"sec-websocket-key", _NONE))

    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
    ]
    offered_protocols = values.get(b"sec-websocket-protocol")
    subprotocol = (
        choose_subprotocol(comma_list(offered_protocols), policy.subprotocols)
        if offered_protocols
        else None
    )
    if subprotocol is not None:
        headers.append(("Sec-WebSocket-Protocol", subprotocol))

    extensions: list[Extension] = []
    if policy.compression != OFF:
        offers = values.get(b"sec-websocket-extensions", _NONE)
        deflate = negotiate_deflate(
            offers,
            policy.max_message_bytes,
            str(policy.compression),
            policy.window_bits,
            policy.memory_level,
        )
        if deflate is not None:
            extension, answer = deflate
            extensions.append(extension)
            headers.append(("Sec-WebSocket-Extensions", answer))
    return AcceptedUpgrade(headers, extensions, subprotocol, policy.max_message_bytes)


def _valid_key(values: list[str]) -> str:
    if len(values) != 1:
        raise HttpError(400, "exactly one Sec-WebSocket-Key is required")
    key = values[0].strip()
    try:
        nonce = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise HttpError(400, "Sec-WebSocket-Key is not base64") from None
    if len(nonce) != KEY_BYTES:
        raise HttpError(400, "Sec-WebSocket-Key must encode 16 bytes")
    return key


def choose_subprotocol(offered: list[str], supported: tuple[str, ...]) -> str | None:
    """The first subprotocol the client offered that we speak (the client orders by preference)."""
    for name in offered:
        if name in supported:
            return name
    return None


def negotiate_deflate(
    offer_lines: list[str],
    max_message_bytes: int,
    mode: str = SHARED,
    window_bits: int = DEFAULT_WINDOW_BITS,
    memory_level: int = DEFAULT_MEMORY_LEVEL,
) -> tuple[PerMessageDeflate, str] | None:
    """Accept the first acceptable permessage-deflate offer (RFC 7692 §5), each judged afresh.

    Returns the configured extension and the ``Sec-WebSocket-Extensions`` answer,
    or ``None`` when no offer is acceptable (the connection then runs uncompressed).
    """
    try:
        offers = [parse_extension(item) for item in comma_list(offer_lines)]
    except HeaderSyntaxError as exc:
        raise HttpError(400, f"bad Sec-WebSocket-Extensions: {exc}") from None
    for name, params in offers:
        if name != DEFLATE:
            continue
        answer = deflate_answer(params, mode, window_bits)
        if answer is None:
            continue
        # A fresh object per connection: settings must never leak between offers.
        extension = PerMessageDeflate(
            max_message_bytes=max_message_bytes,
            shared=mode == SHARED,
            memory_level=memory_level,
        )
        extension.finalize(answer)
        return extension, answer
    return None


def deflate_answer(
    params: list[tuple[str, str | None]],
    mode: str = SHARED,
    window_bits: int = DEFAULT_WINDOW_BITS,
) -> str | None:
    """The server's answer to one offer's parameters, or ``None`` to decline that offer.

    Shared mode always answers ``server_no_context_takeover`` (so one compressed frame
    fits every member) and ``client_no_context_takeover`` (so no inflate state outlives
    a message): RFC 7692 §7.1.1.1 and §7.1.1.2 let a server include both even when the
    client did not offer them. Dedicated mode keeps contexts unless the client asked
    otherwise. Either way the windows are at most ``window_bits``: ``server_max_window_bits``
    may be answered unasked (§7.1.2.1), ``client_max_window_bits`` only when offered (§7.1.2.2).
    """
    seen: set[str] = set()
    no_context = {
        "server_no_context_takeover": mode == SHARED,
        "client_no_context_takeover": mode == SHARED,
    }
    server_bits: int | None = None
    client_bits: int | None = None
    client_bits_offered = False
    for key, value in params:
        if key in seen:
            return None  # RFC 7692 §7.1: a repeated parameter makes the offer invalid
        seen.add(key)
        if key in _NO_VALUE_PARAMS:
            if value is not None:
                return None
            no_context[key] = True
        elif key == "server_max_window_bits":
            server_bits = _window_bits(value)
            if server_bits is None:
                return None
        elif key == "client_max_window_bits":
            client_bits_offered = True
            if value is None:
                continue  # the client can take a limit: we set ours
            client_bits = _window_bits(value)
            if client_bits is None:
                return None
        else:
            return None  # unknown parameter
    answer = [DEFLATE]
    answer.extend(key for key, wanted in no_context.items() if wanted)
    server_window = min(window_bits, server_bits or ZLIB_MAX_WINDOW_BITS)
    if server_bits is not None or server_window < ZLIB_MAX_WINDOW_BITS:
        answer.append(f"server_max_window_bits={server_window}")
    if client_bits_offered:
        answer.append(
            f"client_max_window_bits={min(window_bits, client_bits or ZLIB_MAX_WINDOW_BITS)}"
        )
    return "; ".join(answer)


def _window_bits(value: str | None) -> int | None:
    """A window size we can honour: 9..15 (zlib cannot do 8, so such an offer is declined)."""
    if value is None or not value.isdigit() or (len(value) > 1 and value[0] == "0"):
        return None
    bits = int(value)
    if ZLIB_MIN_WINDOW_BITS <= bits <= ZLIB_MAX_WINDOW_BITS:
        return bits
    return None
