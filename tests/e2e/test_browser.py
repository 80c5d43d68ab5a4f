"""The browser chat page at `/`, end to end: a real server and Debian's headless Chromium driven by Playwright.

This module holds the fixtures and helpers of every test_browser_*.py (chat, session, rooms) and
the page's tests as plain HTTP.

Playwright's async API runs in the test's own event loop, beside the server.
Its own browser download is never used: ``executable_path`` is Debian's
``/usr/bin/chromium``. Without it (or without the ``playwright`` package) the
browser tests are skipped on a developer's machine and fail in CI.

Every wait is bounded (Playwright's ``expect`` and explicit deadlines); no
assertion is about how long something took. A failing browser test leaves a
screenshot of each of its pages in its tmp dir (the path is printed).

The two-user test (test_browser_chat.py) takes the screenshot of the chat: always into its tmp dir, and
into ``docs/screenshot.png`` when that file is missing or when
``RAWWS_UPDATE_SCREENSHOT=1`` (so that a test run leaves the work tree clean).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import websockets

from rawws.chat import page as chat_page
from rawws.chat import wire
from rawws.config import DEFAULT_CHAT_MAX_ROOMS_PER_CONNECTION
from rawws.server.server import Server
from tests.support.helpers import access_token, http

try:
    from playwright.async_api import (
        Browser,
        BrowserContext,
        Page,
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
        await self.wait_lobby()

    async def wait_lobby(self) -> None:
        """Online, and in the lobby: its `joined` came (the people list counts someone), so the
        membership is stored and what is said from here is this user's to read."""
        await expect(self.connection).to_have_attribute("data-state", "online")
        await expect(self.page.locator("#member-count")).not_to_have_text("0")

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

    # app.js imports the client library by its hashed URL: a new rawws.js is a new app.js URL too.
    status, _, script = await http_get(
        server.port, f"/static/app.js?v={versions['app.js']}"
    )
    library = re.findall(
        r'from "/static/rawws\.js\?v=([0-9a-f]+)"', script.decode("utf-8")
    )
    assert status == 200 and len(library) == 1, (
        "app.js imports rawws.js with a content hash"
    )
    versions["rawws.js"] = library[0]
    assert script == (STATIC / "app.js").read_bytes().replace(
        b'"/static/rawws.js"', f'"/static/rawws.js?v={library[0]}"'.encode()
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
        ("/static/rawws.js", "text/javascript; charset=utf-8", "no-cache"),
        (
            f"/static/rawws.js?v={versions['rawws.js']}",
            "text/javascript; charset=utf-8",
            immutable,
        ),
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
        name = urlsplit(target).path.rsplit("/", 1)[1]
        if (
            target.startswith("/static/") and name != "app.js"
        ):  # app.js: its import, above
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
    script = (STATIC / "app.js").read_text() + (STATIC / "rawws.js").read_text()
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
        "rawws.js": b"",
        "app.js": b'import { RawwsClient } from "/static/rawws.js";',
        "app.css": b"",
    }
    with pytest.raises(ValueError):
        chat_page.Pages(read=files.__getitem__)
    # An app.js that does not import the library by the URL the page rewrites is refused too.
    files["index.html"] = (
        b'<script type="module" src="/static/app.js"></script><link href="/static/app.css">'
    )
    chat_page.Pages(read=files.__getitem__)
    files["app.js"] = b'import { RawwsClient } from "./rawws.js";'
    with pytest.raises(ValueError):
        chat_page.Pages(read=files.__getitem__)
