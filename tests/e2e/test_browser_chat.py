"""Two users chatting on the browser page, and a message's life (pending, sent, failed), end to end (see test_browser.py)."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from rawws.chat.service import ChatHandler
from tests.e2e import test_browser
from tests.e2e.test_browser import (
    ROOM,
    SCREENSHOT,
    TIMEOUT_S,
    XSS,
    OpenPage,
    StartServer,
    base_url,
    say_directly,
)

try:
    from playwright.async_api import Route, expect
except ImportError:  # pragma: no cover - the browser fixture skips
    pass

# The browser tests' fixtures (tests/e2e/test_browser.py), shared by name.
browser = test_browser.browser
open_page = test_browser.open_page


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
    joins = 2  # alice's and bob's first joins of ROOM: stored events, ids 1 and 2
    for page in (alice, bob):
        keys = await page.keys(ROOM)
        numbers = [int(key.split(":")[1]) for key in keys]
        assert numbers == list(range(joins + 1, joins + total + 1)), keys
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
        # id 2: the lobby's id 1 is this user's own first join of it (a stored event)
        await expect(pending).to_have_attribute("data-key", "lobby:2")
    finally:
        store.append_messages = append_messages  # type: ignore[method-assign]
    await expect(page.message("lobby", 2)).to_have_count(1)

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
