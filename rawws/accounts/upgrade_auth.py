"""The upgrade's credentials, with no I/O of their own: where a token is found on the request,
the Origin check, tickets spent once on this node, and ``WebSocketAuthenticator``, which
decides an upgrade with them (``rawws.accounts.tokens`` verifies the token itself).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from rawws.accounts.tokens import (
    ACCESS,
    BEARER_PROTOCOL_PREFIX,
    TICKET,
    Identity,
    Tokens,
)
from rawws.core.headers import comma_list, get_all
from rawws.core.http import Request
from rawws.errors import AuthError, HttpError, RawwsError


class TicketLedger:
    """Remembers spent ticket ids on this node until they expire (a replay here is refused without a round trip).

    Across a restart and across nodes a ticket is spent once by the ``SharedSpend``
    the authenticator is given: the store's ``spent_tickets`` table, or the bus.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._spent: dict[str, float] = {}

    def spend(self, identity: Identity) -> None:
        now = self.clock()
        if len(self._spent) > 1024:
            self._spent = {jti: exp for jti, exp in self._spent.items() if exp >= now}
        if identity.token_id in self._spent:
            raise AuthError("ticket already used")
        self._spent[identity.token_id] = identity.expires_at

    def release(self, identity: Identity) -> None:
        """Forget a spend whose upgrade was refused for want of the shared record (a 503):
        the client was told to try again, so its retry must not find the ticket spent here."""
        self._spent.pop(identity.token_id, None)


@dataclass(frozen=True, slots=True)
class Credential:
    kind: str  # ACCESS or TICKET
    token: str


def extract_credential(request: Request) -> Credential | None:
    """The token a WebSocket upgrade carries, in order of preference.

    ``Authorization: Bearer`` (non-browser clients), then a ``bearer.<token>``
    subprotocol (browsers, which cannot set headers), then ``?ticket=`` (single
    use, the safest thing in a URL), then ``?token=``.
    """
    authorization = request.header("authorization")
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return Credential(ACCESS, token.strip())
    for offered in comma_list(get_all(request.headers, b"sec-websocket-protocol")):
        if offered.startswith(BEARER_PROTOCOL_PREFIX) and len(offered) > len(
            BEARER_PROTOCOL_PREFIX
        ):
            return Credential(ACCESS, offered[len(BEARER_PROTOCOL_PREFIX) :])
    ticket = request.query_param("ticket")
    if ticket:
        return Credential(TICKET, ticket)
    query_token = request.query_param("token")
    if query_token:
        return Credential(ACCESS, query_token)
    return None


def bearer_token(request: Request) -> str:
    """The token of ``Authorization: Bearer <token>`` on a plain HTTP request, or 401."""
    authorization = request.header("authorization") or ""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Authorization: Bearer <access token> required")
    return token.strip()


def check_origin(request: Request, allowed: frozenset[str], *, tls: bool) -> None:
    """403 unless the browser's ``Origin`` is ours or allowed; clients without ``Origin`` pass.

    Browsers always send ``Origin`` on a WebSocket handshake, so this is what
    stops another site's page from opening a socket with a user's cookie or ticket.
    """
    origin = request.header("origin")
    if origin is None:
        return
    origin = origin.strip().rstrip("/").lower()
    host = (request.header("host") or "").strip().lower()
    secure = (
        tls or request.scheme == "https"
    )  # behind a trusted TLS-terminating proxy, the page was https
    own = f"{'https' if secure else 'http'}://{host}"
    if origin == own or origin in allowed:
        return
    raise HttpError(403, "origin not allowed")


#: (ticket id, its expiry) → ``True`` the first time it is spent on any node
SharedSpend = Callable[[str, float], Awaitable[bool]]


class WebSocketAuthenticator:
    """Decides, before any 101, whether an upgrade request may open a chat connection."""

    def __init__(
        self,
        tokens: Tokens,
        ledger: TicketLedger,
        allowed_origins: frozenset[str],
        *,
        tls: bool,
        shared_spend: SharedSpend | None = None,
        check_stopped: Callable[[Identity], None] | None = None,
        check_connect: Callable[[Identity, Request], Awaitable[None]] | None = None,
    ) -> None:
        self.tokens = tokens
        #: The app's ``connect`` hook (``accounts.hooks.connect_check``), asked last, before the 101.
        self.check_connect = check_connect
        #: 401 for a credential its user's ``not_before`` stamp stopped (``accounts.stops``).
        self.check_stopped = check_stopped
        self.ledger = ledger
        self.shared_spend = (
            shared_spend  # several nodes: a ticket is spent once across all of them
        )
        self.allowed_origins = frozenset(
            origin.rstrip("/").lower() for origin in allowed_origins
        )
        self.tls = tls

    def __call__(self, request: Request) -> Identity | Awaitable[Identity]:
        """The identity, or an awaitable of it when the app's ``connect`` hook is asked."""
        identity = self._verify(request)
        if self.check_connect is None:
            return identity
        return self._ask_app(identity, request, self.check_connect)

    async def _ask_app(
        self,
        identity: Identity | Awaitable[Identity],
        request: Request,
        check: Callable[[Identity, Request], Awaitable[None]],
    ) -> Identity:
        if not isinstance(identity, Identity):
            identity = await identity
        await check(identity, request)  # HttpError: 403, or 503 when the app is down
        return identity

    def _verify(self, request: Request) -> Identity | Awaitable[Identity]:
        """The identity, or (a ticket on a node of several) an awaitable of it: the
        ticket is spent in the shared record before the upgrade is accepted."""
        check_origin(request, self.allowed_origins, tls=self.tls)
        credential = extract_credential(request)
        if credential is None:
            raise AuthError("a token or ticket is required")
        identity = self.tokens.verify(credential.token, credential.kind)
        if self.check_stopped is not None:
            self.check_stopped(identity)  # a dictionary look-up: no round trip
        if credential.kind == TICKET:
            self.ledger.spend(
                identity
            )  # a replay on this node is refused without a round trip
            if self.shared_spend is not None:
                return self._spend_shared(identity, self.shared_spend)
        return kept_identity(identity)

    async def _spend_shared(self, identity: Identity, spend: SharedSpend) -> Identity:
        try:
            first = await spend(identity.token_id, identity.expires_at)
        except RawwsError:
            # Without the shared record a ticket could be spent once per node: refuse it,
            # unspent here, so the retry the 503 asks for can succeed.
            self.ledger.release(identity)
            raise HttpError(
                503,
                "tickets are unavailable for a moment; try again",
                [("Retry-After", "5")],
            ) from None
        if not first:
            raise AuthError("ticket already used")
        return kept_identity(identity)


def kept_identity(identity: Identity) -> Identity:
    """What a connection keeps of ``identity`` for its life: who (the user's one string for every
    connection of theirs), until when, when it was issued (``accounts.stops``) and its room rights.
    The token's id and its login's id serve the checks before the 101 alone: dropped, they are about
    150 bytes less per open connection."""
    return replace(identity, user=sys.intern(identity.user), token_id="", session="")
