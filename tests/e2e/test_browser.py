"""The browser chat page at `/`, end to end: a real server and Debian's headless Chromium driven by Playwright.

Playwright's async API runs in the test's own event loop, beside the server.
Its own browser download is never used: ``executable_path`` is Debian's
``/usr/bin/chromium``. Without it (or without the ``playwright`` package) the
browser tests are skipped on a developer's machine and fail in CI.

Every wait is bounded (Playwright's ``expect`` and explicit deadlines); no
assertion is about how long something took. A failing browser test leaves a
screenshot of each of its pages in its tmp dir (the path is printed).

The two-user test takes the screenshot of the chat: always into its tmp dir, and
into ``docs/screenshot.png`` when that file is missing or when
``RAWWS_UPDATE_SCREENSHOT=1`` (so that a test run leaves the work tree clean).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import websockets

from rawws.accounts.tokens import Tokens
from rawws.chat import page as chat_page
from rawws.chat import wire
from rawws.chat.app import token_settings
from rawws.chat.service import ChatHandler
from rawws.config import DEFAULT_CHAT_MAX_ROOMS_PER_CONNECTION
from rawws.core.closecodes import GOING_AWAY
from rawws.server.server import Server
from tests.support.helpers import access_token, http

try:
    from playwright.async_api import (
        Browser,
        BrowserContext,
        Page,
        Route,
        WebSocketRoute,
        async_playwright,
        expect,
    )
except ImportError:  # pragma: no cover - the skip/fail below says what is missing
    async_playwright = None  # type: ignore[assignment]

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_S = 20.0  # the longest any single wait may take
TIMEOUT_MS = int(TIMEOUT_S * 1000)
PASSWORD = "correct horse battery"
ROOM = "dev"
XSS = "<img src=x onerror=alert(1)>"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"
STATIC = Path(chat_page.__file__).resolve().parent / "static"

# Records Content-Security-Policy violations where the page cannot hide them
# (an init script is injected by the browser, not by the page, so CSP does not apply to it).
CSP_PROBE = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""

StartServer = Callable[..., Awaitable[Server]]


def require_browser() -> None:
    """Skip without Playwright or Chromium, except in CI (``CI=true``), where that is a failure."""
    missing = []
    if async_playwright is None:
        missing.append(
            "the playwright package (`make sync-dev` installs the locked test group)"
        )
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if missing:
        message = "browser tests need " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    require_browser()
    expect.set_options(timeout=TIMEOUT_MS)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS, timeout=60_000
        )
        try:
            yield browser
        finally:
            await browser.close()


class ChatPage:
    """One browser context (one user) on the chat page, and what the page did."""

    def __init__(
        self, context: BrowserContext, page: Page, name: str, base_url: str
    ) -> None:
        self.context = context
        self.page = page
        self.name = name
        self.base_url = base_url
        self.dialogs: list[str] = []
        self.websocket_urls: list[str] = []
        self.urls: list[str] = []
        self.page_errors: list[str] = []
        page.on("dialog", self._on_dialog)
        page.on("websocket", lambda ws: self.websocket_urls.append(ws.url))
        page.on("framenavigated", lambda frame: self.urls.append(frame.url))
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def _on_dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        asyncio.ensure_future(dialog.dismiss())

    # -- locators ------------------------------------------------------------------------

    @property
    def connection(self):
        return self.page.locator("#connection")

    def messages(self, room: str):
        return self.page.locator(f'#messages ol[data-room="{room}"] > li.message')

    def message(self, room: str, message_id: int):
        return self.page.locator(f'#messages [data-key="{room}:{message_id}"]')

    def member(self, user: str):
        return self.page.locator(f'#member-list [data-user="{user}"]')

    def room_button(self, room: str):
        return self.page.locator(f'#room-list [data-room="{room}"] .room-button')

    # -- actions -------------------------------------------------------------------------

    async def register(self) -> None:
        """Create the account on the page (which then signs in) and wait until the chat is online."""
        await self.page.goto(self.base_url)
        await self.page.click("#tab-register")
        await self.page.fill("#register-username", self.name)
        await self.page.fill("#register-password", PASSWORD)
        await self.page.click("#register-form button[type=submit]")
        await expect(self.connection).to_have_attribute("data-state", "online")

    async def sign_in(self) -> None:
        await expect(self.page.locator("#login-form")).to_be_visible()
        await self.page.fill("#login-username", self.name)
        await self.page.fill("#login-password", PASSWORD)
        await self.page.click("#login-form button[type=submit]")
        await expect(self.connection).to_have_attribute("data-state", "online")

    async def join(self, room: str) -> None:
        await self.page.fill("#join-room", room)
        await self.page.press("#join-room", "Enter")
        await expect(self.room_button(room)).to_have_attribute("aria-current", "true")
        await expect(self.page.locator("#room-name")).to_have_text(room)

    async def say(self, text: str) -> None:
        """Type and press Enter; wait until the page shows it acknowledged (sent)."""
        sent_before = await self.page.locator(
            '#messages li.message.own[data-state="sent"]'
        ).count()
        await self.page.fill("#message-input", text)
        await self.page.press("#message-input", "Enter")
        await expect(self.page.locator("#message-input")).to_have_value("")
        await expect(
            self.page.locator('#messages li.message.own[data-state="sent"]')
        ).to_have_count(sent_before + 1)

    async def keys(self, room: str) -> list[str]:
        return await self.messages(room).evaluate_all(
            "nodes => nodes.map(n => n.dataset.key || '')"
        )

    async def token(self) -> str | None:
        return await self.page.evaluate("sessionStorage.getItem('rawws.token')")

    async def csp_violations(self) -> list[str]:
        return await self.page.evaluate("window.__cspViolations || []")


OpenPage = Callable[..., Awaitable[ChatPage]]


@pytest.fixture
async def open_page(
    browser: Browser, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[OpenPage]:
    """Open the chat page in a fresh browser context; on failure, screenshot every page opened."""
    opened: list[ChatPage] = []
    failed_before = request.session.testsfailed

    async def open_(
        base_url: str, name: str, *, viewport: dict | None = None, mobile: bool = False
    ) -> ChatPage:
        context = await browser.new_context(
            viewport=viewport or {"width": 1280, "height": 800},
            is_mobile=mobile,
            has_touch=mobile,
            device_scale_factor=1,
            reduced_motion="reduce",  # drawers open without a transition: screenshots show them whole
        )
        context.set_default_timeout(TIMEOUT_MS)
        await context.add_init_script(CSP_PROBE)
        chat_page = ChatPage(context, await context.new_page(), name, base_url)
        opened.append(chat_page)
        return chat_page

    yield open_
    if request.session.testsfailed > failed_before:
        for chat_page in opened:
            path = tmp_path / f"failure-{chat_page.name}.png"
            with contextlib.suppress(Exception):
                await chat_page.page.screenshot(path=str(path), timeout=5000)
                print(f"screenshot of {chat_page.name}'s page: {path}")
    for chat_page in opened:
        with contextlib.suppress(Exception):
            await chat_page.context.close()


def base_url(server: Server) -> str:
    return f"http://127.0.0.1:{server.port}/"


# -- plain HTTP and a direct WebSocket client -----------------------------------------


async def http_get(
    port: int,
    target: str,
    method: str = "GET",
    body: dict | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request on its own connection: status, headers (lower-case names), body."""
    reply = await http(port, method, target, body, headers=headers, timeout=TIMEOUT_S)
    return reply.status, reply.headers, reply.body


async def login(port: int, user: str) -> str:
    return await access_token(port, user, PASSWORD)


async def say_directly(port: int, user: str, room: str, texts: list[str]) -> list[int]:
    """Log in over HTTP, say ``texts`` in ``room`` on a plain `/ws` connection; the stored ids (from the acks)."""
    token = await login(port, user)
    ids: dict[str, int] = {}
    async with asyncio.timeout(TIMEOUT_S):
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/ws",
            additional_headers={"Authorization": f"Bearer {token}"},
            proxy=None,
        ) as ws:
            frames = []

            async def next_frame(kind: str) -> dict:
                while True:
                    frame = json.loads(await ws.recv())
                    frames.append(frame)
                    if frame["type"] == kind:
                        return frame
                    assert frame["type"] != "error", frame

            await next_frame("welcome")
            await ws.send(json.dumps({"type": "join", "room": room}))
            await next_frame("joined")
            for i, text in enumerate(texts):
                await ws.send(
                    json.dumps(
                        {"type": "say", "room": room, "text": text, "ref": f"r{i}"}
                    )
                )
                ack = await next_frame("ack")
                ids[ack["ref"]] = ack["id"]
    return [ids[f"r{i}"] for i in range(len(texts))]


# -- the page as plain HTTP -------------------------------------------------------------


async def test_page_and_assets_are_served_with_security_headers(
    start_server: StartServer,
) -> None:
    server = await start_server()
    status, headers, body = await http_get(server.port, "/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["cache-control"] == "no-cache"
    html = body.decode("utf-8")
    versions = dict(re.findall(r'"/static/(app\.(?:js|css))\?v=([0-9a-f]+)"', html))
    assert set(versions) == {"app.js", "app.css"}, (
        "the page names its script and stylesheet with a content hash"
    )

    immutable = "public, max-age=31536000, immutable"
    for target, content_type, cache in [
        ("/", "text/html; charset=utf-8", "no-cache"),
        ("/static/app.js", "text/javascript; charset=utf-8", "no-cache"),
        ("/static/app.css", "text/css; charset=utf-8", "no-cache"),
        (
            f"/static/app.js?v={versions['app.js']}",
            "text/javascript; charset=utf-8",
            immutable,
        ),
        (
            f"/static/app.css?v={versions['app.css']}",
            "text/css; charset=utf-8",
            immutable,
        ),
        ("/static/app.js?v=stale", "text/javascript; charset=utf-8", "no-cache"),
    ]:
        status, headers, body = await http_get(server.port, target)
        assert status == 200, target
        assert headers["content-type"] == content_type, target
        assert headers["cache-control"] == cache, target
        assert headers["content-security-policy"] == (
            "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "
            "script-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        ), target
        assert headers["x-content-type-options"] == "nosniff", target
        assert headers["referrer-policy"] == "no-referrer", target
        if target.startswith("/static/"):
            name = urlsplit(target).path.rsplit("/", 1)[1]
            assert body == (STATIC / name).read_bytes(), target

    status, headers, body = await http_get(server.port, "/", method="HEAD")
    assert (
        status == 200
        and body == b""
        and headers["content-security-policy"].startswith("default-src 'self'")
    )
    status, _, _ = await http_get(server.port, "/static/nope.js")
    assert status == 404
    status, headers, _ = await http_get(server.port, "/", method="POST", body={})
    assert status == 405 and "GET" in headers["allow"]


def test_page_has_no_inline_script_or_style_and_no_html_sinks() -> None:
    html = (STATIC / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), (
        "inline <script> (CSP forbids it)"
    )
    assert "<style" not in html and not re.search(r"\sstyle=", html), (
        "inline style (CSP forbids it)"
    )
    assert not re.search(r"\son[a-z]+=", html), "inline event handler (CSP forbids it)"
    assert "javascript:" not in html
    script = (STATIC / "app.js").read_text()
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ):
        assert sink not in script, f"app.js uses {sink}: user text must go in as text"
    assert '.setAttribute("style"' not in script


def test_the_page_keeps_no_copy_of_the_protocols_limits() -> None:
    """They come with every welcome (docs/protocol.md); a number typed into the page would go stale."""
    script = (STATIC / "app.js").read_text()
    for copy in (
        wire.ROOM_NAME.pattern,
        wire.ROOM_RULE,
        wire.DEFAULT_ROOM,
        str(wire.MAX_TEXT_CHARS),
        str(wire.MAX_ROOM_CHARS),
        str(wire.DEFAULT_HISTORY_LIMIT),
        str(wire.MAX_HISTORY_LIMIT),
        str(DEFAULT_CHAT_MAX_ROOMS_PER_CONNECTION),
    ):
        assert not re.search(rf"(?<![\w.]){re.escape(copy)}(?![\w.])", script), copy
    html = (STATIC / "index.html").read_text()
    for element in ("message-input", "join-room", "room-name"):
        tag = re.search(rf'<[a-z0-9]+ id="{element}"[^>]*>[^<]*', html)
        assert tag is not None, element
        assert "maxlength" not in tag.group(0) and wire.DEFAULT_ROOM not in tag.group(0)


def test_pages_refuse_an_index_that_does_not_reference_its_assets() -> None:
    files = {
        "index.html": b"<!doctype html><title>x</title>",
        "app.js": b"",
        "app.css": b"",
    }
    with pytest.raises(ValueError):
        chat_page.Pages(read=files.__getitem__)


# -- in the browser ------------------------------------------------------------------------


async def test_two_users_chat_render_text_inertly_and_catch_up_after_a_restart(
    start_server: StartServer, open_page: OpenPage, tmp_path: Path
) -> None:
    server = await start_server()
    port, data_dir = server.port, server.config.data_dir
    alice = await open_page(base_url(server), "alice")
    bob = await open_page(base_url(server), "bob")

    # Register and sign in on the page; the lobby is joined by default.
    await alice.register()
    await bob.register()
    for page in (alice, bob):
        await expect(page.room_button("lobby")).to_have_attribute(
            "aria-current", "true"
        )
        await expect(page.page.locator("#me-name")).to_have_text(page.name)

    # Both join a room and see each other there.
    await alice.join(ROOM)
    await bob.join(ROOM)
    await expect(alice.member("bob")).to_be_visible()
    await expect(bob.member("alice")).to_be_visible()
    await expect(alice.page.locator("#member-count")).to_have_text("2")
    # Chromium offers permessage-deflate; both pages run in shared compression (no
    # context takeover either way), so the room's messages below reach them as shared frames.
    chat_sessions = [session for session in server.connections if session.path == "/ws"]
    assert len(chat_sessions) == 2
    assert all(
        session.compressed and session.ws.shared_deflate_bits == 12
        for session in chat_sessions
    )

    # A message in a room Alice is not looking at counts as unread there.
    await bob.page.click('#room-list [data-room="lobby"] .room-button')
    await bob.say("anyone around? the dev room is where it's at")
    await bob.page.click(f'#room-list [data-room="{ROOM}"] .room-button')
    await expect(alice.room_button("lobby").locator(".unread")).to_have_text("1")

    conversation = [
        (alice, "Morning! The chat page is live at / now."),
        (bob, "Nice. Is it really just the raw WebSocket under there?"),
        (
            alice,
            "Yes: h11 for the upgrade, wsproto for frames, and a single-use ticket per connection.",
        ),
        (bob, "And if the server restarts?"),
        (
            alice,
            "It reconnects with backoff and re-joins with since=<last id>, so nothing is lost or doubled.",
        ),
    ]
    for speaker, text in conversation:
        await speaker.say(text)
        for page in (alice, bob):
            await expect(page.messages(ROOM).last.locator(".text")).to_have_text(text)
    await expect(alice.messages(ROOM)).to_have_count(len(conversation))
    await expect(bob.messages(ROOM)).to_have_count(len(conversation))
    await expect(alice.messages(ROOM).first.locator(".author")).to_have_text("alice")
    await expect(alice.messages(ROOM).first.locator("time")).to_have_attribute(
        "datetime", re.compile(r"^\d{4}-")
    )

    await alice.page.screenshot(path=str(tmp_path / "screenshot.png"))
    if os.environ.get("RAWWS_UPDATE_SCREENSHOT") == "1" or not SCREENSHOT.exists():
        SCREENSHOT.parent.mkdir(exist_ok=True)
        await alice.page.screenshot(path=str(SCREENSHOT))

    # The XSS string is shown as text and runs nothing.
    await bob.say(XSS)
    for page in (alice, bob):
        await expect(page.messages(ROOM).last.locator(".text")).to_have_text(XSS)
        assert await page.page.locator("#messages img").count() == 0
        assert page.dialogs == []

    # The server goes away. Alice cannot reconnect until Bob's messages are stored on the
    # restarted server (her ticket requests fail as if it were still down); Bob's page reconnects
    # on its own.
    last_seen = max(int(key.split(":")[1]) for key in await alice.keys(ROOM))
    server_up = asyncio.Event()

    async def ticket_gate(route: Route) -> None:
        if server_up.is_set():
            await route.continue_()
        else:
            await route.abort("connectionrefused")

    await alice.context.route("**/auth/ticket", ticket_gate)
    await asyncio.wait_for(server.shutdown(), TIMEOUT_S)
    for page in (alice, bob):
        await expect(page.connection).to_have_attribute(
            "data-state", re.compile("reconnecting|offline")
        )

    server = await start_server(data_dir=data_dir, port=port)
    assert server.port == port
    meanwhile = [
        "sent while you were away (1)",
        "sent while you were away (2)",
        "sent while you were away (3)",
    ]
    ids = await say_directly(port, "bob", ROOM, meanwhile)
    assert ids == [last_seen + 1, last_seen + 2, last_seen + 3]
    server_up.set()

    for page in (alice, bob):
        await expect(page.connection).to_have_attribute("data-state", "online")
        for message_id, text in zip(ids, meanwhile, strict=True):
            await expect(page.message(ROOM, message_id)).to_have_count(1)
            await expect(page.message(ROOM, message_id).locator(".text")).to_have_text(
                text
            )
    await expect(alice.member("bob")).to_be_visible()

    # Live again: both ways, and still no message twice and all in id order.
    await alice.say("welcome back")
    await expect(bob.messages(ROOM).last.locator(".text")).to_have_text("welcome back")
    total = (
        len(conversation) + 1 + len(meanwhile) + 1
    )  # the talk, the XSS line, the ones meanwhile, "welcome back"
    for page in (alice, bob):
        keys = await page.keys(ROOM)
        numbers = [int(key.split(":")[1]) for key in keys]
        assert numbers == list(range(1, total + 1)), keys
        await expect(
            page.page.locator("#messages li.message[data-state=pending]")
        ).to_have_count(0)

    # The access token never appeared in a URL; every WebSocket used a fresh ticket.
    for page in (alice, bob):
        token = await page.token()
        assert token
        for url in [
            *page.urls,
            page.page.url,
            await page.page.evaluate("location.href"),
        ]:
            assert token not in url and "token" not in url and "ticket" not in url, url
        assert len(page.websocket_urls) >= 2, (
            page.websocket_urls
        )  # the first connection and the one after the restart
        tickets = []
        for url in page.websocket_urls:
            parts = urlsplit(url)
            assert (parts.scheme, parts.netloc, parts.path) == (
                "ws",
                f"127.0.0.1:{port}",
                "/ws",
            ), url
            query = parse_qs(parts.query)
            assert set(query) == {"ticket"}, url
            assert token not in url
            tickets.append(query["ticket"][0])
        assert len(set(tickets)) == len(tickets), "a ticket is used once"
    pages_sessions = [
        s
        for s in server.connections
        if s.identity is not None and s.identity.user == "alice"
    ]
    assert [session.subprotocol for session in pages_sessions] == ["rawws.v1"]

    for page in (alice, bob):
        assert page.dialogs == []
        assert page.page_errors == []
        assert await page.csp_violations() == []


async def test_own_message_is_pending_until_acked_and_errors_are_shown_politely(
    start_server: StartServer, open_page: OpenPage
) -> None:
    server = await start_server()
    page = await open_page(base_url(server), "carol")
    await page.register()

    # Hold the store: the message is on its way but not acknowledged.
    handler = server.endpoints["/ws"].handler
    assert isinstance(handler, ChatHandler)
    store = handler.writer.store
    release = asyncio.Event()
    append_messages = store.append_messages

    async def held_append(items):
        await release.wait()
        return await append_messages(items)

    store.append_messages = held_append  # type: ignore[method-assign]
    try:
        await page.page.fill("#message-input", "is this thing on?")
        await page.page.press("#message-input", "Enter")
        pending = page.page.locator("#messages li.message.own").last
        await expect(pending).to_have_attribute("data-state", "pending")
        await expect(pending.locator(".status")).to_have_text("Sending…")
        release.set()
        await expect(pending).to_have_attribute("data-state", "sent")
        await expect(pending).to_have_attribute("data-key", "lobby:1")
    finally:
        store.append_messages = append_messages  # type: ignore[method-assign]
    await expect(page.message("lobby", 1)).to_have_count(1)

    # Thirty messages in one go outrun the rate limit: the refused ones are marked, and the
    # error frame is put in words.
    await page.page.evaluate(
        """(n) => {
            const input = document.getElementById("message-input");
            const form = document.getElementById("composer");
            for (let i = 0; i < n; i++) { input.value = "flood " + i; form.requestSubmit(); }
        }""",
        30,
    )
    await expect(page.page.locator("#notice")).to_be_visible()
    await expect(page.page.locator("#notice-text")).to_contain_text("a little fast")
    failed = page.page.locator('#messages li.message[data-state="failed"]')
    await expect(failed.first).to_be_visible()
    await expect(failed.first.locator(".status button")).to_have_text("Retry")
    await expect(
        page.page.locator('#messages li.message[data-state="pending"]')
    ).to_have_count(0)

    # A bad room name is refused on the page, in words.
    await page.page.fill("#join-room", "Not A Room!")
    await page.page.press("#join-room", "Enter")
    await expect(page.page.locator("#join-form .form-error")).to_contain_text(
        "Room names are 1-32 characters of a-z, 0-9"
    )
    assert page.page_errors == []
    assert await page.csp_violations() == []


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
    refresh_before = await page.page.evaluate("sessionStorage.getItem('rawws.refresh')")
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
    assert (
        await page.page.evaluate("sessionStorage.getItem('rawws.refresh')")
        != refresh_before
    )  # rotated

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
    assert (
        await page.page.evaluate("document.getElementById('message-input').maxLength")
        == wire.MAX_TEXT_CHARS
    )
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
    assert await input_box.evaluate("input => input.maxLength") == 10
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


async def test_a_private_room_on_the_page_is_no_room_until_an_invitation(
    start_server: StartServer, open_page: OpenPage
) -> None:
    """The page joins a private room by its name: refused in words as no room at all (and dropped
    from the list) until its owner invites the user, whose page then says so."""
    from tests.support.chat_client import close_quietly, connect_chat, new_user

    server = await start_server()
    page = await open_page(base_url(server), "dora")
    await page.register()
    ann = await connect_chat(server, await new_user(server.port, "ann"), "ann")
    try:
        await ann.send(type="create", room="den", kind="private", ref="c")
        den = (await ann.wait_frame("created", ref="c"))["room"]
        await ann.join(den)

        await page.page.fill("#join-room", den)
        await page.page.press("#join-room", "Enter")
        await expect(page.page.locator("#notice-text")).to_contain_text(
            "There is no room by that name"
        )
        await expect(page.room_button(den)).to_have_count(0)

        await ann.send(type="invite", room=den, user="dora", ref="i")
        await ann.wait_frame("invited", ref="i")
        await expect(page.page.locator("#notice-text")).to_contain_text(
            f"ann invited you to {den}"
        )
        await page.page.fill("#join-room", den)
        await page.page.press("#join-room", "Enter")
        await expect(page.room_button(den)).to_have_count(1)
        # Ids count membership events too: the invitation took the room's id 1, so the message
        # is found by its text, under the id the ack gave it.
        await ann.say(den, "welcome in", "w")
        ack = await ann.wait_frame("ack", ref="w")
        assert ack["id"] == 2
        await expect(page.message(den, ack["id"])).to_contain_text("welcome in")
    finally:
        await close_quietly(ann)
    assert page.page_errors == []
    assert await page.csp_violations() == []


async def test_the_page_makes_a_private_room_invites_and_opens_a_direct_room(
    start_server: StartServer, open_page: OpenPage
) -> None:
    """Two pages: ann makes a private room with the page's control and invites bob, whose page lists
    it and joins it with a click; the member list shows roles; bob opens a direct room from the
    member list and what he says there reaches ann's page, which was told and joined it."""
    from rawws.chat.doors import direct_name

    server = await start_server()
    ann = await open_page(base_url(server), "ann")
    bob = await open_page(base_url(server), "bob")
    await ann.register()
    await bob.register()

    await ann.page.fill("#create-room", "den")
    await ann.page.press("#create-room", "Enter")
    title = ann.page.locator("#room-name")
    await expect(title).to_have_text(re.compile(r"^den\.[a-z0-9]{8}$"))
    den = await title.text_content()
    assert den is not None
    await expect(ann.room_button(den)).to_have_attribute("aria-current", "true")
    await expect(ann.member("ann")).to_contain_text("owner")

    await expect(bob.page.locator(f'#directory [data-room="{den}"]')).to_have_count(0)
    await ann.page.fill("#invite-user", "bob")
    await ann.page.press("#invite-user", "Enter")
    await expect(ann.page.locator("#notice-text")).to_contain_text(
        f"bob may join {den} now"
    )
    await expect(bob.page.locator("#notice-text")).to_contain_text(
        f"ann invited you to {den}"
    )
    listed = bob.page.locator(f'#directory [data-room="{den}"] .room-button')
    await expect(listed).to_contain_text("private, member")
    await listed.click()
    await expect(bob.room_button(den)).to_have_attribute("aria-current", "true")
    await expect(bob.member("ann")).to_contain_text("owner")
    await expect(ann.member("bob")).to_contain_text("member")
    await bob.say("hello den")
    await expect(ann.messages(den)).to_contain_text(["hello den"])

    direct = direct_name("ann", "bob")
    await bob.member("ann").locator(".member-open").click()
    await expect(bob.page.locator("#room-name")).to_have_text("ann")
    await expect(bob.page.locator(".room-title .hash")).to_have_text("@")
    await expect(bob.room_button(direct)).to_have_attribute("aria-current", "true")
    await bob.say("just us two")
    await expect(ann.page.locator("#notice-text")).to_contain_text(
        "bob started a direct conversation with you"
    )
    await expect(ann.room_button(direct)).to_have_text(re.compile(r"^@bob\d*$"))
    await ann.room_button(direct).click()
    await expect(ann.page.locator("#room-name")).to_have_text("bob")
    await expect(ann.messages(direct)).to_contain_text(["just us two"])
    await expect(ann.member("bob")).to_contain_text("member")
    for page in (ann, bob):
        assert page.page_errors == []
        assert await page.csp_violations() == []
