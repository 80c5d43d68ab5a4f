"""The /api/v1 calls on the server's router: the key, the scope and the rate checked in one place.

Every call goes through ``ApiRoutes.dispatch``: a live key (``bad_key`` 401 for
anything else, a user's JWT included), the call's scope (403), the key's token
bucket (429), then the strict body (400), then the handler. Whatever a handler
raises that is not an ``ApiError`` is a store outage (503) or a bug (logged, with
no key or body in the line, and answered 500): never a client's bytes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rawws.apps.calls import ApiCall, ApiError, Body
from rawws.apps.keys import ApiKey, parse_presented, secret_matches
from rawws.core.http import Request, Response, Router, json_response
from rawws.core.ratelimit import RateLimiter
from rawws.store.outage import StoreUnavailable

log = logging.getLogger("rawws.api")

PREFIX = "/api/v1/"
Handler = Callable[[ApiCall], Awaitable[dict[str, Any]]]
#: The key whose id is given, or None (unknown or revoked): cached by the caller as it likes.
KeyLookup = Callable[[str], Awaitable[ApiKey | None]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    scope: str
    handler: Handler


class ApiRoutes:
    """The calls of ``/api/v1``, each with its scope; ``add`` one, then ``mount`` them on a router."""

    def __init__(
        self, lookup: KeyLookup, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.lookup = lookup
        self.clock = clock
        self.endpoints: dict[str, Endpoint] = {}
        self._buckets: dict[str, RateLimiter] = {}

    def add(self, name: str, scope: str, handler: Handler) -> None:
        self.endpoints[name] = Endpoint(name, scope, handler)

    def mount(self, router: Router) -> None:
        for name in self.endpoints:
            router.add("POST", PREFIX + name, self.dispatch)

    async def dispatch(self, request: Request) -> Response:
        try:
            endpoint = self.endpoints[request.path.removeprefix(PREFIX)]
            key = await self._key(request)
            if endpoint.scope not in key.scopes:
                raise ApiError(
                    403, "scope", f"this key has no {endpoint.scope!r} scope"
                )
            self._rate(key)
            body = Body(_json_object(request))
            call = ApiCall(key, body, request, time.time())
            answer = await endpoint.handler(call)
            body.done()  # a handler calls it before it acts; this catches one that forgot
            return json_response(200, answer)
        except ApiError as error:
            return json_response(error.status, error.payload(), error.headers)
        except StoreUnavailable:
            outage = ApiError(
                503,
                "unavailable",
                "the store is unavailable: retry",
                [("Retry-After", "1")],
            )
            return json_response(outage.status, outage.payload(), outage.headers)

    async def _key(self, request: Request) -> ApiKey:
        header = request.header("authorization") or ""
        scheme, _, token = header.partition(" ")
        presented = (
            parse_presented(token.strip()) if scheme.lower() == "bearer" else None
        )
        if presented is None:
            raise _bad_key()
        key = await self.lookup(presented[0])
        if (
            key is None
            or key.revoked_at is not None
            or not secret_matches(key, presented[1])
        ):
            raise _bad_key()
        return key

    def _rate(self, key: ApiKey) -> None:
        bucket = self._buckets.get(key.id)
        if bucket is None or bucket.capacity != key.burst:
            bucket = self._buckets[key.id] = RateLimiter(
                key.burst, key.burst / key.per_s
            )
        wait = bucket.acquire(key.id, self.clock())
        if wait > 0:
            raise ApiError(
                429,
                "rate_limited",
                f"this key's rate is {key.per_s:g} calls a second",
                [("Retry-After", str(max(1, round(wait + 0.5))))],
            )


def _bad_key() -> ApiError:
    return ApiError(
        401,
        "bad_key",
        "an API key is required: Authorization: Bearer rwk_…",
        [("WWW-Authenticate", 'Bearer realm="rawws-api"')],
    )


def _json_object(request: Request) -> dict[str, Any]:
    content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(415, "bad_content_type", "Content-Type must be application/json")
    try:
        payload = json.loads(request.body)
    except (ValueError, RecursionError):
        raise ApiError(400, "bad_json", "body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "bad_json", "body must be a JSON object")
    return payload
