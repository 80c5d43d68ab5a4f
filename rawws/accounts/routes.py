"""`POST /auth/register`, `/auth/login`, `/auth/ticket`, `/auth/refresh`, `/auth/logout`, `/auth/password`,
`/auth/erase` (``rawws.accounts.erasure``).

JSON in, JSON out, hashing off the event loop. Every action an outsider can
repeat cheaply is limited (logins per user at one address and per address,
``rawws.accounts.login_limits``; registrations per address, tickets per user),
with addresses keyed as ``rawws.core.addresses`` says. With several nodes the
limits are counted across all of them (``shared_limit``); when that count is
unreachable, each node's own limit still holds. A store outage is a 503 with
``Retry-After``.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from rawws.accounts.erasure import erase_account
from rawws.accounts.hashing import FairHashing
from rawws.accounts.login_limits import PERIOD_S as LOGIN_PERIOD_S
from rawws.accounts.login_limits import LoginLimits
from rawws.accounts.passwords import Passwords, check_password, check_username
from rawws.accounts.refresh import RefreshTokens, TokenPair, refresh_token_hash
from rawws.accounts.session_cookie import (
    check_cookie_request,
    clear_cookie,
    cookie_token,
    set_cookie,
    wants_cookie,
)
from rawws.accounts.stops import StopBook
from rawws.accounts.tokens import (
    ACCESS,
    TICKET,
    Identity,
    Tokens,
)
from rawws.accounts.upgrade_auth import (
    bearer_token,
)
from rawws.config import (
    DEFAULT_LOGINS_PER_MINUTE_PER_ADDRESS,
    DEFAULT_LOGINS_PER_MINUTE_PER_USER,
    DEFAULT_REFRESH_TTL_S,
    DEFAULT_REGISTRATIONS_PER_HOUR_PER_ADDRESS,
    DEFAULT_TICKETS_PER_MINUTE_PER_USER,
)
from rawws.core.addresses import peer_limit_key
from rawws.core.counters import Counters
from rawws.core.http import Request, Response, Router, json_response
from rawws.core.ratelimit import RateLimiter
from rawws.errors import HttpError, RawwsError, UsernameTaken
from rawws.store import Store
from rawws.store.base import Stamp, StoredMessage
from rawws.store.names import username_key
from rawws.store.outage import RETRY_AFTER_S, StoreHealth, StoreUnavailable

log = logging.getLogger("rawws.accounts")

REGISTRATION_PERIOD_S = 3600.0
TICKET_PERIOD_S = 60.0

#: (kind, key, limit, period_s) → seconds to wait (0.0: allowed); counts across every node.
#: Raises a ``RawwsError`` when the shared count cannot be reached.
SharedLimit = Callable[[str, str, int, float], Awaitable[float]]

T = TypeVar("T")

BAD_CREDENTIALS = "invalid username or password"
ACCOUNT_DISABLED = "account_disabled"


def read_json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object: 415 for another content type, 400 for anything malformed.

    The body is at most ``max_body_bytes`` (the server answers 413 past it), so parsing
    it costs bounded time; what ``json`` itself refuses beyond syntax is a 400 too:
    nesting past the interpreter's recursion limit (``RecursionError``, raised by the C
    scanner before it goes deeper) and an integer longer than Python's int-string limit
    (``ValueError``). A string field must be text that UTF-8 can carry: JSON lets
    ``"\\ud800"`` (a lone surrogate) through, and hashing or storing it would fail later.
    """
    content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise HttpError(415, "Content-Type must be application/json")
    try:
        payload = json.loads(request.body)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError too
        raise HttpError(400, "body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise HttpError(400, "body must be a JSON object")
    for value in payload.values():
        if isinstance(value, str) and not _is_utf8_text(value):
            raise HttpError(400, "body is not valid JSON: a string is not Unicode text")
    return payload


def _is_utf8_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


class Accounts:
    def __init__(
        self,
        store: Store,
        passwords: Passwords,
        tokens: Tokens,
        *,
        logins_per_user: int = DEFAULT_LOGINS_PER_MINUTE_PER_USER,
        logins_per_address: int = DEFAULT_LOGINS_PER_MINUTE_PER_ADDRESS,
        registrations_per_address: int = DEFAULT_REGISTRATIONS_PER_HOUR_PER_ADDRESS,
        tickets_per_user: int = DEFAULT_TICKETS_PER_MINUTE_PER_USER,
        refresh_ttl_s: float = DEFAULT_REFRESH_TTL_S,
        health: StoreHealth | None = None,
        shared_limit: SharedLimit | None = None,
        counters: Counters | None = None,
        stops: StopBook | None = None,
        allowed_origins: frozenset[str] = frozenset(),
        tls: bool = False,
    ) -> None:
        #: Where a cookie session's requests may come from (``session_cookie``), as for /ws.
        self.allowed_origins = frozenset(o.rstrip("/").lower() for o in allowed_origins)
        self.tls = tls
        #: The users' ``not_before`` stamps as this node knows them (none: nothing is stopped here).
        self.stops = stops
        self.counters = counters if counters is not None else Counters()
        self.store = store
        self.shared_limit = (
            shared_limit  # several nodes: attempts counted across all of them
        )
        self.passwords = passwords
        self.tokens = tokens
        self.refresh_tokens = RefreshTokens(store, tokens, refresh_ttl_s)
        self.health = health if health is not None else StoreHealth()
        # logins_per_user: guesses at one account from one address (others' guesses never lock its owner out)
        self._login_limits = LoginLimits(logins_per_user, logins_per_address)
        self._registration_limit = RateLimiter(
            registrations_per_address, REGISTRATION_PERIOD_S
        )
        self._ticket_limit = RateLimiter(tickets_per_user, TICKET_PERIOD_S)
        self.hashing = FairHashing()
        #: An erasure's ``deleted`` events, for the chat to deliver and publish (set by the app).
        self.on_erased: Callable[[list[StoredMessage]], object] | None = None

    def add_routes(self, router: Router) -> None:
        router.add("POST", "/auth/register", self.register)
        router.add("POST", "/auth/login", self.login)
        router.add("POST", "/auth/ticket", self.ticket)
        router.add("POST", "/auth/refresh", self.refresh)
        router.add("POST", "/auth/logout", self.logout)
        router.add("POST", "/auth/password", self.change_password)
        router.add("POST", "/auth/erase", functools.partial(erase_account, self))

    async def _off_loop(
        self, request: Request, user: str, function: Callable[..., T], *args: object
    ) -> T:
        """A hash or a check on the hashing threads, in this address's turn (``FairHashing``)."""
        return await self.hashing.run(
            peer_limit_key(request.peer), username_key(user), function, *args
        )

    async def _stored(self, operation: str, awaitable: Awaitable[T]) -> T:
        """A store call; an outage is a 503 with ``Retry-After`` (logged once by ``StoreHealth``)."""
        try:
            return await self.health.call(operation, awaitable)
        except StoreUnavailable:
            raise HttpError(
                503,
                "the database is unavailable; try again shortly",
                _retry_after(RETRY_AFTER_S),
            ) from None

    async def register(self, request: Request) -> Response:
        body = read_json_object(request)
        username = check_username(body.get("username"))
        password = check_password(body.get("password"), username)
        await self._limit(
            self._registration_limit,
            ("registration", peer_limit_key(request.peer)),
            REGISTRATION_PERIOD_S,
            "too many registrations from this address",
        )
        password_hash = await self._off_loop(
            request, username, self.passwords.hash, password
        )
        try:
            user = await self._stored(
                "register", self.store.create_user(username, password_hash)
            )
        except UsernameTaken:
            raise HttpError(
                409, "username already taken, or too like one that is"
            ) from None
        log.info("user registered id=%d", user.id)
        return json_response(
            201,
            {
                "id": user.id,
                "username": user.username,
                "created_at": user.created_at.isoformat(),
            },
        )

    async def login(self, request: Request) -> Response:
        try:
            response = await self._login(request)
        except HttpError as error:
            outcome = {
                401: "bad_credentials",
                403: "disabled",
                429: "rate_limited",
            }.get(error.status, "bad_request")
            self.counters.login(outcome)
            raise
        except Exception:
            self.counters.login("error")
            raise
        self.counters.login("ok")
        return response

    async def _login(self, request: Request) -> Response:
        body = read_json_object(request)
        cookie = wants_cookie(body)
        if cookie:  # before the password is checked: a forged request costs no hash
            check_cookie_request(request, self.allowed_origins, tls=self.tls)
        username, password = body.get("username"), body.get("password")
        if (
            not isinstance(username, str)
            or not isinstance(password, str)
            or len(username) > 64
        ):
            raise HttpError(400, "username and password are required strings")
        await self._rate_limit(username_key(username), peer_limit_key(request.peer))
        user = await self._stored("login", self.store.get_user(username))
        ok = await self._off_loop(
            request,
            username,
            self.passwords.verify,
            user.password_hash if user else None,
            password,
        )
        if user is None or not ok:
            raise HttpError(
                401, BAD_CREDENTIALS
            )  # the same answer for an unknown user and a wrong password
        if user.disabled:  # said only to whoever knows the password
            raise _disabled()
        if self.passwords.needs_rehash(user.password_hash):
            new_hash = await self._off_loop(
                request, username, self.passwords.hash, password
            )
            await self._stored(
                "login", self.store.update_password_hash(user.id, new_hash)
            )
        pair = await self._stored(
            "login", self.refresh_tokens.start(user.id, user.username)
        )
        # A disable that committed while the password was checked revoked no family of this
        # login (it was not stored yet): look again now that it is, and undo it if so.
        again = await self._stored("login", self.store.get_user(user.username))
        if again is None or again.disabled:
            await self._stored("login", self.refresh_tokens.revoke(pair.refresh_token))
            raise _disabled()
        if self.stops is not None:
            # Enabled since this node last polled: its new token works here at once.
            stamp = Stamp(username_key(again.username), again.not_before, False)
            self.stops.note(stamp)
        return self._tokens_response(request, pair, cookie)

    def _tokens_response(
        self, request: Request, pair: TokenPair, cookie: bool
    ) -> Response:
        """``pair`` as JSON; a cookie session's refresh token goes in the cookie only."""
        headers = [("Cache-Control", "no-store")]
        payload = pair.as_json()
        if cookie:
            del payload["refresh_token"]
            headers.append(
                set_cookie(
                    request, pair.refresh_token, pair.refresh_expires_in, tls=self.tls
                )
            )
        return json_response(200, payload, headers)

    def _presented(self, request: Request, body: dict[str, Any]) -> tuple[object, bool]:
        """The refresh token a request presents, and whether it came in the cookie.

        The body's token wins (an API client); else the cookie, only from a page of ours.
        """
        if "refresh_token" in body:
            return body["refresh_token"], False
        token = cookie_token(request)
        if token is None:
            return None, False
        check_cookie_request(request, self.allowed_origins, tls=self.tls)
        return token, True

    async def refresh(self, request: Request) -> Response:
        """A refresh token for a new access token and the refresh token's successor (rotation)."""
        presented, cookie = self._presented(request, read_json_object(request))
        try:
            pair = await self._stored("refresh", self.refresh_tokens.rotate(presented))
        except HttpError as error:
            if cookie and error.status == 401:  # spent, revoked or expired: drop it
                error.headers = [
                    *error.headers,
                    clear_cookie(request, tls=self.tls),
                ]
            raise
        return self._tokens_response(request, pair, cookie)

    async def logout(self, request: Request) -> Response:
        """Revoke the refresh token's family, and stop the user's access tokens issued until now.

        That login cannot be refreshed again; the user's access tokens (and tickets, and the
        connections they opened) issued before this moment stop, on every node (``StopBook``).
        The user's other logins keep their refresh tokens: they refresh for a new access token.
        Idempotent: a second logout with the same token stops nothing more.
        """
        presented, cookie = self._presented(request, read_json_object(request))
        self.refresh_tokens.check_presented(presented)
        assert isinstance(presented, str)
        stamp = await self._stored(
            "logout",
            self.store.revoke_family_and_stamp(
                refresh_token_hash(presented), self.tokens.clock()
            ),
        )
        if stamp is not None and self.stops is not None:
            # this node's connections close now, the others' as soon as they hear
            self.stops.stamped(stamp)
        headers = [("Cache-Control", "no-store")]
        if cookie:
            headers.append(clear_cookie(request, tls=self.tls))
        return json_response(200, {"revoked": stamp is not None}, headers)

    async def change_password(self, request: Request) -> Response:
        """Needs the access token and the current password; revokes every other login of the user.

        Every access token of the user issued before the change stops (this one too, and the
        connections they opened): the caller's own login keeps its refresh token and refreshes
        for a new access token; every other login must sign in with the new password.
        """
        identity = self._verified(request)
        body = read_json_object(request)
        current, new = body.get("current_password"), body.get("new_password")
        if not isinstance(current, str) or not isinstance(new, str):
            raise HttpError(
                400, "current_password and new_password are required strings"
            )
        await self._rate_limit(
            username_key(identity.user), peer_limit_key(request.peer)
        )
        user = await self._stored("password", self.store.get_user(identity.user))
        if user is None:
            raise HttpError(
                403, "this account has no password here"
            )  # e.g. an outside provider's user
        new = check_password(new, user.username)
        if not await self._off_loop(
            request, user.username, self.passwords.verify, user.password_hash, current
        ):
            raise HttpError(401, BAD_CREDENTIALS)
        new_hash = await self._off_loop(
            request, user.username, self.passwords.hash, new
        )
        await self._stored(
            "password", self.store.update_password_hash(user.id, new_hash)
        )
        stamp = await self._stored(
            "password", self.store.stamp_not_before(user.id, self.tokens.clock())
        )
        if stamp is not None and self.stops is not None:
            self.stops.stamped(stamp)
        revoked = await self._stored(
            "password",
            self.refresh_tokens.revoke_others(user.id, identity.session or None),
        )
        log.info(
            "password changed id=%d; %d other refresh token(s) revoked",
            user.id,
            revoked,
        )
        return json_response(
            200, {"other_sessions_revoked": revoked}, [("Cache-Control", "no-store")]
        )

    def _verified(self, request: Request) -> Identity:
        """The access token of ``Authorization: Bearer``, verified and not stopped (else 401)."""
        identity = self.tokens.verify(bearer_token(request), ACCESS)
        if self.stops is not None:
            self.stops.check(identity)
        return identity

    async def ticket(self, request: Request) -> Response:
        identity = self._verified(request)
        await self._limit(
            self._ticket_limit,
            ("ticket", identity.user),
            TICKET_PERIOD_S,
            "too many tickets requested",
        )
        ticket, ticket_identity = self.tokens.issue(
            identity.user,
            TICKET,
            session_expires_at=identity.expires_at,
            session_issued_at=identity.issued_at,
            rooms=identity.rooms,  # an outside token's room rights hold on its ticket too
        )
        return json_response(
            200,
            {
                "ticket": ticket,
                "expires_in": int(ticket_identity.expires_at - self.tokens.clock()),
            },
            [("Cache-Control", "no-store")],
        )

    async def _rate_limit(self, user_key: str, address: str) -> None:
        wait = self._login_limits.acquire(user_key, address, time.monotonic())
        if wait <= 0:
            for kind, key, limit in self._login_limits.keys(user_key, address):
                wait = max(
                    wait, await self._shared_wait(kind, key, limit, LOGIN_PERIOD_S)
                )
        if wait > 0:
            raise HttpError(429, "too many login attempts", _retry_after(wait))

    async def _limit(
        self,
        limiter: RateLimiter,
        kind_key: tuple[str, str],
        period_s: float,
        message: str,
    ) -> None:
        """One token from this node's ``limiter``, then from the cluster's bucket ``kind_key``; else 429."""
        wait = limiter.acquire(kind_key[1], time.monotonic())
        if wait <= 0:
            wait = await self._shared_wait(*kind_key, limiter.capacity, period_s)
        if wait > 0:
            raise HttpError(429, message, _retry_after(wait))

    async def _shared_wait(
        self, kind: str, key: str, limit: int, period_s: float
    ) -> float:
        """The cluster's wait for one more ``kind`` action by ``key`` (0.0 with one node, or when unreachable)."""
        if self.shared_limit is None:
            return 0.0
        try:
            return await self.shared_limit(kind, key, limit, period_s)
        except RawwsError:
            # The shared count is unreachable: this node's own limit still holds.
            log.debug("shared %s limit unavailable; the node's own limit applies", kind)
            return 0.0

    def close(self) -> None:
        self.hashing.close()


class StoredTickets:
    """A ``SharedSpend`` over the store's ``spent_tickets``: a spent ticket stays spent across a restart
    (and across nodes on one database). An outage raises ``StoreUnavailable``: the upgrade is refused
    with 503 rather than letting a ticket be spent twice."""

    def __init__(
        self, store: Store, health: StoreHealth, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.health = health
        self.clock = clock

    async def __call__(self, token_id: str, expires_at: float) -> bool:
        return await self.health.call(
            "ticket", self.store.spend_ticket(token_id, expires_at, self.clock())
        )


def _disabled() -> HttpError:
    """403 ``account_disabled``: after the password was right, so a guesser learns nothing."""
    return HttpError(
        403, "this account is disabled by the server's admin", code=ACCOUNT_DISABLED
    )


def _retry_after(wait_s: float) -> list[tuple[str, str]]:
    """``Retry-After`` as whole delay-seconds (RFC 9110 §10.2.3), rounded up, at least 1."""
    return [
        (
            "Retry-After",
            str(max(1, int(wait_s) + (0 if float(wait_s).is_integer() else 1))),
        )
    ]
