"""Routing decisions: 404 for unknown paths, 405 with Allow for known paths and wrong methods."""

from __future__ import annotations

import pytest

from rawws.core.http import (
    Request,
    Response,
    Router,
    check_request_head,
    error_response,
)
from rawws.errors import HttpError


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
    assert (request.path, request.query, request.query_param("token")) == (
        "/ws",
        "token=abc&x=1",
        "abc",
    )


def test_error_body_is_json_with_status_and_message():
    response = error_response(HttpError(413, "too big"))
    assert response.status == 413
    assert response.body == b'{"error":{"status":413,"message":"too big"}}'
    assert ("Content-Type", "application/json") in response.headers


LIMITS = {"max_target_bytes": 100, "max_head_bytes": 300, "max_body_bytes": 50}


def head_status(
    method=b"GET", target=b"/", version=b"1.1", headers=((b"host", b"x"),)
) -> int | None:
    try:
        check_request_head(method, target, version, list(headers), **LIMITS)
    except HttpError as error:
        return error.status
    return None


def test_an_ordinary_head_passes():
    assert head_status() is None
    assert head_status(version=b"1.0") is None


@pytest.mark.parametrize(
    ("description", "status", "kwargs"),
    [
        ("HTTP/2.0 request line", 505, {"version": b"2.0"}),
        ("HTTP/0.9", 505, {"version": b"0.9"}),
        ("target over the limit (RFC 7230 §3.1.1)", 414, {"target": b"/" + b"a" * 100}),
        (
            "head over the limit even when it came in one read",
            431,
            {"headers": [(b"x-big", b"v" * 300)]},
        ),
        ("methods are case-sensitive", 501, {"method": b"get"}),
        ("unknown method", 501, {"method": b"BREW"}),
        (
            "Content-Length with Transfer-Encoding (RFC 7230 §3.3.3)",
            400,
            {
                "headers": [
                    (b"content-length", b"3"),
                    (b"transfer-encoding", b"chunked"),
                ]
            },
        ),
        (
            "declared body over the limit",
            413,
            {"headers": [(b"content-length", b"51")]},
        ),
    ],
)
def test_heads_refused_with_their_status(description, status, kwargs):
    assert head_status(**kwargs) == status, description


def test_router_knows_which_paths_it_routes():
    router = Router()
    router.add("POST", "/auth/login", _handler_for_contains)
    assert "/auth/login" in router
    assert "/auth/logout" not in router and "/" not in router


async def _handler_for_contains(request: Request) -> Response:
    return Response(200)


def test_requests_for_the_same_path_keep_one_string_of_it() -> None:
    """Kept with every open WebSocket: the method and path are the process's one copy."""

    def fresh(text: str) -> str:  # a new object, as the HTTP side decodes per request
        return bytes(text, "ascii").decode("ascii")

    first = Request.from_target(fresh("GET"), fresh("/ws?a=1"), headers=[])
    second = Request.from_target(fresh("GET"), fresh("/ws?b=2"), headers=[])
    assert (first.method, first.path, second.query) == ("GET", "/ws", "b=2")
    assert first.path is second.path and first.method is second.method
