"""The page's refresh token in an HttpOnly cookie (``rawws.accounts.session_cookie``): what it is
set with, how it rotates and ends, and every request another site could forge refused.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawws.accounts.session_cookie import (
    COOKIE_NAME,
    SESSION_HEADER,
    cookie_token,
    set_cookie,
)
from rawws.core.http import Request
from rawws.server.server import Server
from tests.conftest import StartServer
from tests.support.helpers import PASSWORD, Reply, http, register

PAGE = {SESSION_HEADER: "cookie"}


def own_origin(server: Server) -> dict[str, str]:
    return {"Origin": f"http://127.0.0.1:{server.port}"}


async def cookie_login(
    server: Server, user: str = "Ada", headers: dict[str, str] | None = None
) -> Reply:
    return await http(
        server.port,
        "POST",
        "/auth/login",
        {"username": user, "password": PASSWORD, "session": "cookie"},
        headers=headers if headers is not None else {**PAGE, **own_origin(server)},
    )


def token_of(reply: Reply) -> str:
    """The refresh token a reply's Set-Cookie stores (asserting its attributes)."""
    cookie = reply.headers["set-cookie"]
    attributes = [part.strip() for part in cookie.split(";")]
    assert "HttpOnly" in attributes and "SameSite=Strict" in attributes, cookie
    assert "Path=/auth" in attributes, cookie
    name, _, value = attributes[0].partition("=")
    assert name == COOKIE_NAME
    return value


async def cookie_call(
    server: Server, path: str, token: str, headers: dict[str, str] | None = None
) -> Reply:
    sent = {**PAGE, **own_origin(server)} if headers is None else headers
    return await http(
        server.port,
        "POST",
        path,
        {},
        headers={**sent, "Cookie": f"other=1; {COOKIE_NAME}={token}"},
    )


@pytest.fixture
async def server(start_server: StartServer, db_url: str | None) -> Server:
    server = await start_server(db_url=db_url)
    assert (await register(server.port, "Ada")).status == 201
    return server


async def test_a_cookie_login_hands_the_refresh_token_to_the_cookie_only(
    server: Server,
) -> None:
    reply = await cookie_login(server)
    assert reply.status == 200, reply.body
    assert "refresh_token" not in reply.json  # no script sees it
    assert reply.json["user"] == "Ada"
    token = token_of(reply)
    assert token and token not in reply.body.decode()
    max_age = [p for p in reply.headers["set-cookie"].split("; ") if "Max-Age" in p]
    assert max_age == [f"Max-Age={int(server.config.refresh_ttl_s)}"]
    assert "Secure" not in reply.headers["set-cookie"]  # plain http on 127.0.0.1


async def test_the_cookie_rotates_on_each_refresh_and_a_spent_one_ends_the_login(
    server: Server,
) -> None:
    first = token_of(await cookie_login(server))
    renewed = await cookie_call(server, "/auth/refresh", first)
    assert renewed.status == 200, renewed.body
    assert "refresh_token" not in renewed.json and renewed.json["user"] == "Ada"
    second = token_of(renewed)
    assert second != first
    replayed = await cookie_call(server, "/auth/refresh", first)
    assert replayed.status == 401
    assert "Max-Age=0" in replayed.headers["set-cookie"]  # the browser drops it
    # the replay revoked the family: the successor is refused too
    assert (await cookie_call(server, "/auth/refresh", second)).status == 401


async def test_logout_by_cookie_revokes_the_login_and_clears_the_cookie(
    server: Server,
) -> None:
    token = token_of(await cookie_login(server))
    out = await cookie_call(server, "/auth/logout", token)
    assert out.status == 200 and out.json == {"revoked": True}
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert (await cookie_call(server, "/auth/refresh", token)).status == 401


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no X-Rawws-Session: a form post or a link from elsewhere
        {"Origin": "https://evil.example"},
        {SESSION_HEADER: "cookie", "Origin": "https://evil.example"},
        {SESSION_HEADER: "yes"},
    ],
)
async def test_a_forged_cookie_request_is_403_and_spends_nothing(
    server: Server, headers: dict[str, str]
) -> None:
    token = token_of(await cookie_login(server))
    for path in ("/auth/refresh", "/auth/logout"):
        forged = await cookie_call(server, path, token, headers)
        assert forged.status == 403, (path, forged.body)
        assert "set-cookie" not in forged.headers
    assert (await cookie_login(server, headers=headers)).status == 403
    # nothing was spent or revoked: the page's own request still works
    assert (await cookie_call(server, "/auth/refresh", token)).status == 200


async def test_api_clients_keep_the_token_in_the_body(server: Server) -> None:
    plain = await http(
        server.port,
        "POST",
        "/auth/login",
        {"username": "Ada", "password": PASSWORD},
    )
    assert plain.status == 200 and "refresh_token" in plain.json
    assert "set-cookie" not in plain.headers


def request_with(cookies: list[bytes], scheme: str = "http") -> Request:
    return Request(
        "POST", "/auth/refresh", "", [(b"cookie", c) for c in cookies], scheme=scheme
    )


@given(
    token=st.text(
        alphabet=st.characters(
            min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=";="
        ),
        min_size=1,
        max_size=64,
    ),
    before=st.lists(
        st.from_regex(r"[a-z]{1,8}=[a-z0-9]{0,8}", fullmatch=True), max_size=3
    ),
)
def test_the_token_is_found_among_any_other_cookies(
    token: str, before: list[str]
) -> None:
    header = "; ".join([*before, f"{COOKIE_NAME}={token}"]).encode("latin-1")
    assert cookie_token(request_with([b"x=1", header])) == token
    assert cookie_token(request_with([b"; ".join(c.encode() for c in before)])) is None


def test_secure_is_set_when_the_page_came_over_https() -> None:
    _, value = set_cookie(request_with([], scheme="https"), "t", 60, tls=False)
    assert value.endswith("; Secure")
    _, value = set_cookie(request_with([]), "t", 60, tls=True)
    assert value.endswith("; Secure")
