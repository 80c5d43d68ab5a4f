"""Tokens and the decisions made with them, with no I/O: JWTs verified as RFC 8725 asks.

* The algorithm comes from our configuration, never from the token: each key
  is bound to one algorithm, and a token whose header names another is refused.
* ``none`` is never accepted; ``exp``, ``iat``, ``sub``, ``iss`` and ``aud``
  are required and checked, with a small leeway.
* Access tokens and single-use tickets differ in ``typ``, so neither can stand
  in for the other; a ticket's ``jti`` is spent on first use, in the store, so
  it stays spent across a restart. A ticket lives exactly ``ticket_ttl_s``: we
  issue it and judge it by one clock, so no leeway is added to its expiry.
* A token signed by an outside provider (``public_key``) names a user of that
  provider: its ``sub`` is put in the provider's namespace (``ext:ada``), which
  no local account can have (local names have no ``:``). It is never the local ``ada``.
* Only an outside token's ``rawws_rooms`` claim (``rawws.accounts.room_rights``) is
  honoured, and a ticket's, which we write only into tickets bought with such a token
  (its subject is in the outside namespace: no local name can be). A claim in a token
  we signed for a local user is ignored: we never write one there.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import jwt

from rawws.accounts.room_rights import CLAIM as ROOMS_CLAIM
from rawws.accounts.room_rights import RoomRights, honoured_rights
from rawws.config import (
    DEFAULT_ACCESS_TTL_S,
    DEFAULT_JWT_AUDIENCE,
    DEFAULT_JWT_ISSUER,
    DEFAULT_JWT_LEEWAY_S,
    DEFAULT_TICKET_TTL_S,
)
from rawws.errors import AuthError

ACCESS = "access"
TICKET = "ticket"

MAX_TOKEN_BYTES = 8 * 1024  # a longer "token" is refused before it is parsed
HEADERS_CACHED = 16  # JWS headers whose ``alg`` is remembered: one per issuer and algorithm in practice
SECRET_BYTES = 32  # generated HS256 secrets (RFC 7518 §3.2: at least the hash size)
PUBLIC_KEY_ALGORITHMS = ("RS256", "ES256", "EdDSA")
BEARER_PROTOCOL_PREFIX = "bearer."
SUBPROTOCOL = "rawws.v1"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud"]
SESSION_EXP_CLAIM = (
    "session_exp"  # in a ticket: the exp of the access token that bought it
)
SESSION_CLAIM = (
    "sid"  # in an access token: the refresh-token family (login) it belongs to
)
# In our tokens: the issue time in whole milliseconds (``iat`` stays whole seconds, RFC 7519
# §2), so a logout stops a token issued in the same second before it, and not one after.
ISSUED_MS_CLAIM = "iat_ms"
# In a ticket: the issue time (ms) of the access token that bought it; a stamp past it stops both.
SESSION_ISSUED_MS_CLAIM = "session_iat_ms"
DEFAULT_PUBLIC_NAMESPACE = "ext"
MAX_USER_CHARS = 64  # what the store keeps as a message's author


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token speaks for, and until when."""

    user: str
    expires_at: float
    token_id: str
    session: str = (
        ""  # the login (refresh-token family) an access token belongs to, if any
    )
    # When the credential was issued (a ticket: the access token that bought it), epoch seconds
    # to the millisecond; a user's ``not_before`` stamp at or past it stops it (``accounts.stops``).
    issued_at: float = 0.0
    # The rooms an outside token (or a ticket bought with one) lets the user into: None, no limits.
    rooms: RoomRights | None = None


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A verification key of an outside identity provider, bound to one algorithm."""

    algorithm: str
    pem: bytes

    def __post_init__(self) -> None:
        if self.algorithm not in PUBLIC_KEY_ALGORITHMS:
            raise ValueError(
                f"public-key algorithm must be one of {PUBLIC_KEY_ALGORITHMS}"
            )


@dataclass(frozen=True, slots=True)
class TokenSettings:
    secret: bytes = field(repr=False)
    issuer: str = DEFAULT_JWT_ISSUER
    audience: str = DEFAULT_JWT_AUDIENCE
    access_ttl_s: float = DEFAULT_ACCESS_TTL_S
    ticket_ttl_s: float = DEFAULT_TICKET_TTL_S
    leeway_s: float = DEFAULT_JWT_LEEWAY_S
    public_key: PublicKey | None = None
    public_namespace: str = DEFAULT_PUBLIC_NAMESPACE

    def __post_init__(self) -> None:
        if len(self.secret) < SECRET_BYTES:
            raise ValueError(f"the HS256 secret must be at least {SECRET_BYTES} bytes")
        if (
            not self.public_namespace
            or not self.public_namespace.isascii()
            or ":" in self.public_namespace
        ):
            raise ValueError(
                "the outside identity namespace must be a non-empty ASCII word without ':'"
            )
        if len(self.public_namespace) > 16:
            raise ValueError(
                "the outside identity namespace must have at most 16 characters"
            )


def generate_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


class Tokens:
    """Issues HS256 tokens and verifies them (and, if configured, an outside provider's)."""

    def __init__(
        self, settings: TokenSettings, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.clock = clock

    def issue(
        self,
        user: str,
        typ: str = ACCESS,
        *,
        session_expires_at: float | None = None,
        session: str = "",
        session_issued_at: float | None = None,
        rooms: RoomRights | None = None,
    ) -> tuple[str, Identity]:
        """A signed token and the identity it proves.

        A ticket is bought with an access token: ``session_expires_at`` is that
        token's ``exp``. The ticket itself is valid ``ticket_ttl_s`` at most and
        never beyond it, and the connection it opens lasts until it. A ticket's
        ``exp`` keeps its fraction of a second: it lives exactly ``ticket_ttl_s``.
        ``rooms``: the buying outside token's room rights, carried by the ticket.
        """
        now = self.clock()
        expires_at: float
        if typ == ACCESS:
            expires_at = int(now + self.settings.access_ttl_s)
        else:
            expires_at = round(now + self.settings.ticket_ttl_s, 3)
        if session_expires_at is not None:
            expires_at = min(expires_at, int(session_expires_at))
        issued_ms = math.floor(now * 1000)  # down: never later than the issue
        session_ms = (
            math.floor(session_issued_at * 1000)
            if session_issued_at is not None
            else issued_ms
        )
        outside_user = user.startswith(f"{self.settings.public_namespace}:")
        if rooms is not None and (typ != TICKET or not outside_user):
            raise ValueError("room rights are carried only by an outside user's ticket")
        token_id = secrets.token_urlsafe(16)
        identity = Identity(
            user, expires_at, token_id, session, session_ms / 1000, rooms
        )
        claims: dict[str, object] = {
            "sub": user,
            "iat": int(now),
            ISSUED_MS_CLAIM: issued_ms,
            "exp": identity.expires_at,
            "iss": self.settings.issuer,
            "aud": self.settings.audience,
            "jti": identity.token_id,
            "typ": typ,
        }
        if typ == TICKET and session_expires_at is not None:
            claims[SESSION_EXP_CLAIM] = int(session_expires_at)
        if typ == TICKET and session_issued_at is not None:
            claims[SESSION_ISSUED_MS_CLAIM] = session_ms
        if session:
            claims[SESSION_CLAIM] = session
        if rooms is not None:
            claims[ROOMS_CLAIM] = rooms.as_claim()
        return jwt.encode(claims, self.settings.secret, algorithm="HS256"), identity

    def verify(self, token: str, typ: str = ACCESS) -> Identity:
        """The identity a token proves, or ``AuthError``: never anything else."""
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthError("token too long")
        if not token.isascii():  # a compact JWS is base64url and dots (RFC 7515 §7.1)
            raise AuthError("malformed token")
        algorithm = _unverified_algorithm(token)
        key, algorithms = self._key_for(algorithm)
        outside = algorithm != "HS256"
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                # exp, nbf and iat are judged below by our clock: PyJWT would read the system's.
                options={
                    "require": REQUIRED_CLAIMS,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError:
            raise AuthError("invalid token") from None
        self._check_times(claims, exp_leeway=typ != TICKET)
        if claims.get("typ", ACCESS) != typ:
            raise AuthError(f"not an {typ} token" if typ == ACCESS else f"not a {typ}")
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise AuthError("invalid subject")
        if outside:  # the provider's users live in their own namespace
            if typ != ACCESS:
                raise AuthError("an outside provider issues access tokens only")
            subject = f"{self.settings.public_namespace}:{subject}"
            if len(subject) > MAX_USER_CHARS or not subject.isprintable():
                raise AuthError("invalid subject")
        token_id = claims.get("jti")
        if typ == TICKET and not isinstance(token_id, str):
            raise AuthError("a ticket needs a jti")
        expires_at = float(claims["exp"])
        if (
            typ == TICKET
        ):  # the connection lasts as long as the access token that bought the ticket
            session_expires_at = _numeric_date(claims.get(SESSION_EXP_CLAIM))
            if session_expires_at is not None and session_expires_at > expires_at:
                expires_at = session_expires_at
        session = claims.get(SESSION_CLAIM) if not outside else None
        return Identity(
            subject,
            expires_at,
            token_id if isinstance(token_id, str) else "",
            session if isinstance(session, str) else "",
            _issued_at(claims, typ, outside),
            self._room_rights(claims, typ, subject, outside),
        )

    def _room_rights(
        self, claims: dict[str, object], typ: str, subject: str, outside: bool
    ) -> RoomRights | None:
        """The ``rawws_rooms`` claim where it is honoured (``honoured_rights``); malformed: 401."""
        of_outside = subject.startswith(f"{self.settings.public_namespace}:")
        try:
            return honoured_rights(claims, outside, typ == TICKET, of_outside)
        except ValueError:
            raise AuthError("invalid room rights") from None

    def _key_for(self, algorithm: object) -> tuple[bytes, list[str]]:
        if algorithm == "HS256":
            return self.settings.secret, ["HS256"]
        public = self.settings.public_key
        if public is not None and algorithm == public.algorithm:
            return public.pem, [public.algorithm]
        raise AuthError("token algorithm not accepted")

    def _check_times(
        self, claims: dict[str, object], *, exp_leeway: bool = True
    ) -> None:
        """``exp``, ``nbf`` and ``iat`` (RFC 7519 §4.1.4-6) against ``self.clock``, with the leeway.

        ``exp_leeway=False`` for tickets: we issue them and judge them by one clock.
        """
        parsed = {
            name: _numeric_date(claims[name])
            for name in ("exp", "iat", "nbf")
            if name in claims
        }
        times = {name: value for name, value in parsed.items() if value is not None}
        if len(times) != len(parsed):
            raise AuthError("invalid time claim")
        now, leeway = self.clock(), self.settings.leeway_s
        if times["exp"] <= now - (leeway if exp_leeway else 0.0):
            raise AuthError("token expired")
        if times.get("nbf", now) > now + leeway:
            raise AuthError("token not valid yet")
        if times["iat"] > now + leeway:
            raise AuthError("token issued in the future")


def _unverified_algorithm(token: str) -> object:
    """The ``alg`` of a compact JWS header, only to pick the key: ``jwt.decode`` checks everything after.

    Read here with base64 and json directly: PyJWT's ``get_unverified_header``
    validates the segment character by character in Python, which made it half
    the cost of checking a token (the signature check validates it again anyway).
    """
    return _header_algorithm(token.split(".", 1)[0])


@functools.lru_cache(maxsize=HEADERS_CACHED)
def _header_algorithm(segment: str) -> object:
    """``_unverified_algorithm`` of one header segment, remembered: every token one issuer signs
    carries the same header, so each upgrade would decode the same few bytes again.
    (A malformed one raises, and is not remembered.)"""
    try:
        header = json.loads(
            base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        )
    except (
        ValueError,
        binascii.Error,
        RecursionError,
    ):  # RecursionError: a header nested thousands deep
        raise AuthError("malformed token") from None
    if not isinstance(header, dict):
        raise AuthError("malformed token")
    return header.get("alg")


def _issued_at(claims: dict[str, object], typ: str, outside: bool) -> float:
    """When a verified token was issued, as precisely as it says: our millisecond claim
    (a ticket's: the access token's), else ``iat`` (whole seconds, checked already)."""
    iat = _numeric_date(claims["iat"]) or 0.0
    if outside:
        return iat
    name = SESSION_ISSUED_MS_CLAIM if typ == TICKET else ISSUED_MS_CLAIM
    value = claims.get(name)
    if type(value) is int and 0 <= value <= (iat + 1) * 1000:
        return value / 1000
    return iat


def _numeric_date(value: object) -> float | None:
    """A JSON number of seconds (RFC 7519 §2 NumericDate) as a finite float, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) else None
