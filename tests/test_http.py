"""Routing decisions: 404 for unknown paths, 405 with Allow for known paths and wrong methods."""

from __future__ import annotations

import pytest

from rawws.errors import HttpError
from rawws.http import Request, Router, error_response


async def ok(request: Request):  # pragma: no cover - only looked up, never awaited here
    raise AssertionError


def test_known_path_and_method_resolve():
    router = Router()
    router.add("GET", "/healthz", ok)
    assert router.resolve("GET", "/healthz") is ok
    assert router.resolve("HEAD", "/healthz") is ok


def test_unknown_path_is_404():
    with pytest.raises(HttpError) as info:
        Router().resolve("GET", "/nope")
    assert info.value.status == 404


def test_wrong_method_is_405_listing_the_allowed_ones():
    router = Router()
    router.add("GET", "/x", ok)
    router.add("POST", "/x", ok)
    with pytest.raises(HttpError) as info:
        router.resolve("DELETE", "/x")
    assert info.value.status == 405
    assert info.value.headers == [("Allow", "GET, POST")]


def test_query_is_kept_apart_from_the_path():
    request = Request.from_target("GET", "/ws?token=abc&x=1", headers=[])
    assert (request.path, request.query, request.query_param("token")) == ("/ws", "token=abc&x=1", "abc")


def test_error_body_is_json_with_status_and_message():
    response = error_response(HttpError(413, "too big"))
    assert response.status == 413
    assert response.body == b'{"error":{"status":413,"message":"too big"}}'
    assert ("Content-Type", "application/json") in response.headers
