"""Hooks without I/O: the body and headers of a call, and what an answer means (``docs/server-api.md``,
"Hooks").

A hook is a ``POST`` of a JSON object signed with HMAC-SHA256 over the exact body bytes, so the app
checks the bytes it received, never a re-encoding of them. The answer counts only when it is a 2xx
whose body is a JSON object with a boolean ``allow``: anything else (another status, not JSON, not
an object, ``allow`` missing or not a boolean) is a failure, which the failure policy decides, so a
misconfigured app never lets a message through by accident.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Final

from rawws.store.room_patterns import room_matches as room_matches

CONNECT: Final = "connect"
JOIN: Final = "join"
SAY: Final = "say"
DISCONNECT: Final = "disconnect"
#: Every hook kind: the only values of the ``X-Rawws-Hook`` header and of the metrics' label.
HOOK_KINDS: Final = (CONNECT, JOIN, SAY, DISCONNECT)

ALLOWED: Final = "allow"
DENIED: Final = "deny"
FAILED: Final = "failed"
DELIVERED: Final = "delivered"  # an after-hook acknowledged (it allows nothing)
#: Every outcome of a call, as the metrics count them.
OUTCOMES: Final = (ALLOWED, DENIED, FAILED, DELIVERED)

SIGNATURE_HEADER: Final = "X-Rawws-Signature"
KIND_HEADER: Final = "X-Rawws-Hook"
DELIVERY_HEADER: Final = "X-Rawws-Delivery"
SIGNATURE_PREFIX: Final = "sha256="
#: The shortest key ``--hook-secret-file`` may hold (HMAC-SHA256's own block of strength).
MIN_SECRET_BYTES: Final = 32
#: The longest reason a denial may carry to a client; a longer one is cut.
MAX_REASON_CHARS: Final = 200


def encode_body(payload: dict[str, object]) -> bytes:
    """The bytes POSTed and signed: compact JSON, keys sorted, UTF-8."""
    return json.dumps(
        payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False
    ).encode("utf-8")


def sign(secret: bytes, body: bytes) -> str:
    """``X-Rawws-Signature``'s value: ``sha256=`` and the hex HMAC-SHA256 of ``body`` under ``secret``."""
    return SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, signature: str | None) -> bool:
    """Whether ``signature`` signs ``body`` (what an app does; the tests' app does it), in constant time."""
    return signature is not None and hmac.compare_digest(
        signature.encode("ascii", "replace"), sign(secret, body).encode("ascii")
    )


def new_delivery_id() -> str:
    """A fresh ``X-Rawws-Delivery``: 128 random bits, so apps may dedup by it alone."""
    return secrets.token_hex(16)


def request_headers(
    kind: str, delivery: str, signature: str, host: str, length: int
) -> list[tuple[str, str]]:
    """The headers of one hook call (no secret in them: the signature is a MAC, not the key)."""
    return [
        ("Host", host),
        ("Content-Type", "application/json"),
        ("Content-Length", str(length)),
        ("User-Agent", "rawws-hooks"),
        (KIND_HEADER, kind),
        (DELIVERY_HEADER, delivery),
        (SIGNATURE_HEADER, signature),
        ("Connection", "close"),
    ]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the app answered: ``allow``, and the ``reason`` of a denial (empty when it gave none);
    ``failed`` when the app did not answer and the failure policy decided."""

    allow: bool
    reason: str = ""
    failed: bool = False


class BadAnswer(ValueError):
    """An answer that is not one: the call failed (the failure policy decides)."""


def parse_answer(status: int, body: bytes) -> Verdict:
    """The verdict in an answer, or ``BadAnswer``: a 2xx whose body is a JSON object with a boolean
    ``allow``; a ``reason`` that is not a string is ignored, a long one cut."""
    if not 200 <= status <= 299:
        raise BadAnswer(f"status {status}")
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadAnswer("not JSON") from None
    if not isinstance(answer, dict):
        raise BadAnswer("not a JSON object")
    allow = answer.get("allow")
    if not isinstance(allow, bool):
        raise BadAnswer("no boolean allow")
    reason = answer.get("reason")
    text = reason[:MAX_REASON_CHARS] if isinstance(reason, str) else ""
    return Verdict(allow, text)


def delivered(status: int) -> bool:
    """An after-hook is acknowledged by any 2xx (its body is not read)."""
    return 200 <= status <= 299


#: An after-hook's first retry waits this long, each next one twice the last, at most ``RETRY_MAX_S``.
RETRY_FIRST_S: Final = 1.0
RETRY_MAX_S: Final = 60.0
#: An after-hook not acknowledged within this long is dropped.
DELIVERY_TTL_S: Final = 24 * 3600.0


def retry_delay(attempts: int) -> float:
    """Seconds before the next try of a delivery that failed ``attempts`` times (1 s doubling to 60 s)."""
    return min(RETRY_MAX_S, RETRY_FIRST_S * 2.0 ** min(max(attempts - 1, 0), 16))
