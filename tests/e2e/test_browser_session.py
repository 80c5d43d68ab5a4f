"""The browser page's session (expiry, renewal), a phone-sized screen and the limits from the welcome, end to end (see test_browser.py)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

from rawws.accounts.session_cookie import COOKIE_NAME
from rawws.accounts.tokens import Tokens
from rawws.chat import wire
from rawws.chat.app import token_settings
from rawws.core.closecodes import GOING_AWAY
from tests.e2e import test_browser
from tests.e2e.test_browser import OpenPage, StartServer, base_url

try:
    from playwright.async_api import Route, WebSocketRoute, expect
except ImportError:  # pragma: no cover - the browser fixture skips
    pass

# The browser tests' fixtures (tests/e2e/test_browser.py), shared by name.
browser = test_browser.browser
open_page = test_browser.open_page


async def refresh_cookie(page: test_browser.ChatPage) -> str | None:
    """The refresh token the browser keeps for the page (an HttpOnly cookie: no script reads it)."""
    for cookie in await page.context.cookies():
        if cookie["name"] == COOKIE_NAME:
            return cookie["value"]
    return None


async def test_expired_session_shows_the_sign_in_form_again(
    start_server: StartServer, open_page: OpenPage
) -> None:
    server = await start_server()
    page = await open_page(base_url(server), "dave")
    await page.register()

    # From now on the page's ticket requests carry an access token that expired an hour ago:
    # the server's own 401 is what the page sees.
    an_hour_ago = Tokens(
        token_settings(server.config), clock=lambda: time.time() - 3600
    )
    expired, _ = an_hour_ago.issue("dave")

    async def expired_token(route: Route) -> None:
        await route.continue_(
            headers={**route.request.headers, "authorization": f"Bearer {expired}"}
        )

    await page.context.route("**/auth/ticket", expired_token)
    for session in list(server.connections):
        session.close(GOING_AWAY, "test: connection dropped")

    await expect(page.page.locator("#auth-view")).to_be_visible()
    await expect(page.page.locator("#chat-view")).to_be_hidden()
    await expect(page.page.locator("#auth-notice")).to_contain_text(
        "session has expired"
    )
    assert await page.token() is None

    await page.context.unroute("**/auth/ticket")
    await page.sign_in()
    await expect(page.room_button("lobby")).to_be_visible()
    assert page.page_errors == []


async def test_the_page_renews_its_session_and_reconnects_without_a_prompt(
    start_server: StartServer, open_page: OpenPage
) -> None:
    """Access tokens of 8 s: the page renews with its refresh token before expiry; the socket bought with the
    old token ends (1008) when it expires, and the page reconnects with the new one and ``since``."""
    server = await start_server(access_ttl_s=8)
    page = await open_page(base_url(server), "fran")
    refreshes: list[int] = []
    page.page.on(
        "response",
        lambda r: (
            refreshes.append(r.status) if r.url.endswith("/auth/refresh") else None
        ),
    )
    await page.register()
    # The page's first look for a refresh cookie (none yet: 401) came before the sign-in.
    assert refreshes[0] == 401
    del refreshes[0]
    refresh_before = await refresh_cookie(page)
    assert refresh_before

    deadline = time.monotonic() + 30
    while (
        len(page.websocket_urls) < 3 or len(refreshes) < 2
    ) and time.monotonic() < deadline:
        await asyncio.sleep(
            0.2
        )  # two renewals and two reconnections after expiry: a page left open stays in
    assert len(refreshes) >= 2 and set(refreshes) == {200}, refreshes
    assert len(page.websocket_urls) >= 3, page.websocket_urls
    await expect(page.connection).to_have_attribute("data-state", "online")
    await expect(page.page.locator("#auth-view")).to_be_hidden()
    assert await refresh_cookie(page) != refresh_before  # rotated

    await page.say("a message after the renewals")
    assert page.dialogs == [] and page.page_errors == []


async def test_phone_sized_viewport(
    start_server: StartServer, open_page: OpenPage, tmp_path: Path
) -> None:
    server = await start_server()
    page = await open_page(
        base_url(server), "erin", viewport={"width": 390, "height": 844}, mobile=True
    )
    await page.page.goto(page.base_url)
    await expect(page.page.locator("#login-form")).to_be_visible()
    await page.register()

    # The room list is folded away behind a button; nothing is wider than the screen.
    await expect(page.page.locator("#sidebar")).to_be_hidden()
    await expect(page.page.locator("#members-panel")).to_be_hidden()
    await expect(page.page.locator("#toggle-rooms")).to_be_visible()
    assert await page.page.evaluate("document.documentElement.scrollWidth") <= 390
    composer = await page.page.locator("#message-input").bounding_box()
    send = await page.page.locator("#send-button").bounding_box()
    assert composer is not None and send is not None
    assert (
        composer["y"] + composer["height"] <= 844 and send["x"] + send["width"] <= 390
    )

    await page.say(
        "hello from a phone, with a long line that has to wrap nicely on a narrow screen"
    )
    await page.page.screenshot(path=str(tmp_path / "phone-chat.png"))

    # Rooms slide in; joining one closes the drawer.
    await page.page.click("#toggle-rooms")
    await expect(page.page.locator("#sidebar")).to_be_visible()
    await page.page.screenshot(path=str(tmp_path / "phone-rooms.png"))
    await page.join("phones")
    await expect(page.page.locator("#sidebar")).to_be_hidden()

    # So do the people in the room.
    await page.page.click("#toggle-members")
    await expect(page.member("erin")).to_be_visible()
    await page.page.click("#scrim", position={"x": 20, "y": 400})
    await expect(page.page.locator("#members-panel")).to_be_hidden()
    assert await page.page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.page_errors == []


async def test_the_page_keeps_to_the_limits_the_server_sent(
    start_server: StartServer, open_page: OpenPage
) -> None:
    """The page has no copy of the protocol's limits: it checks what it sends against the welcome's.
    A server that allows two rooms per connection gets a page that refuses a third by itself; a
    welcome that says ten characters (the text limit is the wire's own, so the test rewrites the
    frame on its way) gets a page that refuses eleven."""
    server = await start_server(chat_max_rooms_per_connection=2)
    page = await open_page(base_url(server), "fay")
    sent: list[str] = []
    page.page.on(
        "websocket", lambda ws: ws.on("framesent", lambda frame: sent.append(frame))
    )
    await page.register()
    # No maxlength to cut a long paste in silence: the box says it is over the welcome's limit.
    box = page.page.locator("#message-input")
    assert await box.evaluate("input => input.maxLength") == -1
    await box.fill("x" * (wire.MAX_TEXT_CHARS + 1))
    await expect(page.page.locator("#length-warning")).to_contain_text(
        f"{wire.MAX_TEXT_CHARS + 1:,} characters: the limit is {wire.MAX_TEXT_CHARS:,}"
    )
    await box.fill("")
    await expect(page.page.locator("#length-warning")).to_be_hidden()
    await page.join("dev")
    await page.page.fill("#join-room", "ops")
    await page.page.press("#join-room", "Enter")
    await expect(page.page.locator("#join-form .form-error")).to_have_text(
        "You're in as many rooms as you can be (2). Leave one to join another."
    )
    await expect(page.room_button("ops")).to_have_count(0)
    await page.say(
        "still here"
    )  # the socket is still in use: a join would have gone first
    assert not [frame for frame in sent if '"ops"' in frame], sent

    # A welcome that says 10: the page holds the eleventh character back.
    other = await open_page(base_url(server), "gus")

    def ten_characters(ws: WebSocketRoute) -> None:
        to_server = ws.connect_to_server()

        def to_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "welcome":
                frame["limits"]["max_text_chars"] = 10
            ws.send(json.dumps(frame))

        to_server.on_message(to_page)

    await other.page.route_web_socket(re.compile(r"/ws\?"), ten_characters)
    said: list[str] = []
    other.page.on(
        "websocket", lambda ws: ws.on("framesent", lambda frame: said.append(frame))
    )
    await other.register()
    input_box = other.page.locator("#message-input")
    await input_box.fill("eleven char")
    await expect(other.page.locator("#length-warning")).to_contain_text(
        "11 characters: the limit is 10"
    )
    await input_box.evaluate(
        """(input) => {
            input.value = "eleven char";
            document.getElementById("composer").requestSubmit();
        }"""
    )
    await expect(other.page.locator("#notice-text")).to_have_text(
        "That message is too long: the limit is 10 characters."
    )
    await expect(input_box).to_have_value("eleven char")
    assert not [frame for frame in said if "eleven char" in frame], said
    await other.say("ten chars!")
    assert page.page_errors == other.page_errors == []
