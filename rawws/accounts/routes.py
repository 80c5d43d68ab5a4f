"""`POST /auth/register`, `/auth/login`, `/auth/ticket`: JSON in, JSON out, hashing off the event loop."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from rawws.accounts.passwords import Passwords, check_password, check_username
from rawws.accounts.tokens import ACCESS, TICKET, Tokens, bearer_token
from rawws.config import DEFAULT_LOGINS_PER_MINUTE_PER_ADDRESS, DEFAULT_LOGINS_PER_MINUTE_PER_USER
from rawws.core.http import Request, Response, Router, json_response
from rawws.core.ratelimit import RateLimiter
from rawws.errors import HttpError, RawwsError, UsernameTaken
from rawws.store import Store

log = logging.getLogger("rawws.accounts")

# Login attempts: a burst of this many, refilled over the period.
LOGIN_PERIOD_S = 60.0

#: (kind, key, limit, period_s) → seconds to wait (0.0: allowed); counts across every node
SharedLimit = Callable[[str, str, int, float], Awaitable[float]]
HASHING_THREADS = 2  # each argon2 hash holds 64 MiB: bound how many run at once

T = TypeVar("T")

BAD_CREDENTIALS = "invalid username or password"


def read_json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object: 415 for another content type, 400 for anything malformed."""
    content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise HttpError(415, "Content-Type must be application/json")
    try:
        payload = json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise HttpError(400, "body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise HttpError(400, "body must be a JSON object")
    return payload


def client_host(peer: str) -> str:
    """``"1.2.3.4:5678"`` → ``"1.2.3.4"``; ``"[::1]:5678"`` → ``"::1"``."""
    host = peer.rsplit(":", 1)[0]
    return host.strip("[]")


class Accounts:
    def __init__(
        self,
        store: Store,
        passwords: Passwords,
        tokens: Tokens,
        *,
        logins_per_user: int = DEFAULT_LOGINS_PER_MINUTE_PER_USER,
        logins_per_address: int = DEFAULT_LOGINS_PER_MINUTE_PER_ADDRESS,
        shared_limit: SharedLimit | None = None,
    ) -> None:
        self.store = store
        self.logins_per_user = logins_per_user
        self.logins_per_address = logins_per_address
        self.shared_limit = shared_limit  # several nodes: attempts counted across all of them
        self.passwords = passwords
        self.tokens = tokens
        self._user_limit = RateLimiter(logins_per_user, LOGIN_PERIOD_S)
        self._address_limit = RateLimiter(logins_per_address, LOGIN_PERIOD_S)
        self._hashing = ThreadPoolExecutor(HASHING_THREADS, thread_name_prefix="rawws-argon2")

    def add_routes(self, router: Router) -> None:
        router.add("POST", "/auth/register", self.register)
        router.add("POST", "/auth/login", self.login)
        router.add("POST", "/auth/ticket", self.ticket)

    async def _off_loop(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._hashing, function, *args)

    async def register(self, request: Request) -> Response:
        body = read_json_object(request)
        username = check_username(body.get("username"))
        password = check_password(body.get("password"), username)
        password_hash = await self._off_loop(self.passwords.hash, password)
        try:
            user = await self.store.create_user(username, password_hash)
        except UsernameTaken:
            raise HttpError(409, "username already taken") from None
        log.info("user registered id=%d", user.id)
        return json_response(201, {"id": user.id, "username": user.username, "created_at": user.created_at.isoformat()})

    async def login(self, request: Request) -> Response:
        body = read_json_object(request)
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str) or len(username) > 64:
            raise HttpError(400, "username and password are required strings")
        await self._rate_limit(username.lower(), client_host(request.peer))
        user = await self.store.get_user(username)
        ok = await self._off_loop(self.passwords.verify, user.password_hash if user else None, password)
        if user is None or not ok:
            raise HttpError(401, BAD_CREDENTIALS)  # the same answer for an unknown user and a wrong password
        if self.passwords.needs_rehash(user.password_hash):
            await self.store.update_password_hash(user.id, await self._off_loop(self.passwords.hash, password))
        token, identity = self.tokens.issue(user.username, ACCESS)
        expires_in = int(identity.expires_at - self.tokens.clock())
        return json_response(
            200,
            {"access_token": token, "token_type": "bearer", "expires_in": expires_in},
            [("Cache-Control", "no-store")],
        )

    async def ticket(self, request: Request) -> Response:
        identity = self.tokens.verify(bearer_token(request), ACCESS)
        ticket, ticket_identity = self.tokens.issue(identity.user, TICKET, session_expires_at=identity.expires_at)
        return json_response(
            200,
            {"ticket": ticket, "expires_in": int(ticket_identity.expires_at - self.tokens.clock())},
            [("Cache-Control", "no-store")],
        )

    async def _rate_limit(self, user_key: str, address: str) -> None:
        now = time.monotonic()
        wait = max(self._user_limit.acquire(user_key, now), self._address_limit.acquire(address, now))
        if wait <= 0 and self.shared_limit is not None:
            try:
                wait = max(
                    await self.shared_limit("user", user_key, self.logins_per_user, LOGIN_PERIOD_S),
                    await self.shared_limit("address", address, self.logins_per_address, LOGIN_PERIOD_S),
                )
            except RawwsError:  # the shared counter is unreachable: this node's own limit still holds
                log.debug("shared login limit unavailable; the node's own limit applies")
        if wait > 0:
            raise HttpError(429, "too many login attempts", [("Retry-After", str(int(wait) + 1))])

    def close(self) -> None:
        self._hashing.shutdown(wait=False, cancel_futures=True)
