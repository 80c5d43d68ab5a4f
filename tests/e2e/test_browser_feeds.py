"""The page in a feed room (docs/server-api.md, "Feed rooms"): an application's messages arrive
live with an "app" badge beside the sender, and the composer gives way to a line saying only
the application posts there. End to end in Chromium against a real server (see test_browser.py);
the feed is made and published to through the store and the chat's feed, as the server API does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rawws.apps.setup import setup_service
from rawws.chat.app import ChatApp
from rawws.config import ServerConfig
from rawws.server.server import Server
from rawws.store import NewMessage
from rawws.store.base import FEED
from tests.conftest import CHEAP_ARGON2, ONE_ADDRESS
from tests.e2e import test_browser
from tests.e2e.test_browser import OpenPage, base_url

try:
    from playwright.async_api import expect
except ImportError:  # pragma: no cover - the browser fixture skips
    pass

browser = test_browser.browser
open_page = test_browser.open_page


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Server, ChatApp]]:
    """A real server, as ``start_server`` makes one, and the chat it runs (its store and feed)."""
    config = ServerConfig(
        host="127.0.0.1",
        port=0,
        data_dir=str(tmp_path / "data"),
        **CHEAP_ARGON2,  # type: ignore[arg-type]
        **ONE_ADDRESS,  # type: ignore[arg-type]
    )
    server = Server(config)
    app = await setup_service(server)
    await server.start()
    yield server, app
    await asyncio.wait_for(server.shutdown(), timeout=15)


async def publish(app: ChatApp, room: str, user: str, text: str) -> int:
    """What the server API's publish does: stored with ``app``, then out through the chat's feed."""
    (stored,) = await app.store.append_messages(
        [NewMessage(room, user, text, time.time(), app=True)]
    )
    app.chat.feed.stored_here(stored)
    return stored.id


async def test_a_feed_shows_app_messages_live_with_a_badge_and_no_composer(
    served: tuple[Server, ChatApp], open_page: OpenPage
) -> None:
    server, app = served
    assert await app.store.create_room("news", FEED, "newsdesk") is not None
    alice = await open_page(base_url(server), "alice")
    await alice.register()
    composer, note = alice.page.locator("#composer"), alice.page.locator("#feed-note")
    await expect(composer).to_be_visible()
    await expect(note).to_be_hidden()

    await alice.join("news")
    await expect(composer).to_be_hidden()
    await expect(note).to_have_text("This is a feed: only its application posts here.")

    # live, through the store path: one by an app that bears alice's own name
    first = await publish(app, "news", "newsdesk", "markets open")
    second = await publish(app, "news", "alice", "not from alice the user")
    for message_id, user in ((first, "newsdesk"), (second, "alice")):
        node = alice.message("news", message_id)
        await expect(node.locator(".author")).to_have_text(user)
        await expect(node.locator(".app-badge")).to_have_text("app")
    same_name = alice.message("news", second)
    await expect(same_name).not_to_have_class("message own")  # never shown as hers
    await same_name.hover()
    await expect(same_name.locator(".message-actions")).to_have_count(0)

    # another room: the composer is back, and a user's message has no badge
    await alice.page.click('#room-list [data-room="lobby"] .room-button')
    await expect(composer).to_be_visible()
    await expect(note).to_be_hidden()
    await alice.say("hello lobby")
    await expect(alice.messages("lobby").last.locator(".app-badge")).to_have_count(0)
    await alice.page.click('#room-list [data-room="news"] .room-button')
    await expect(composer).to_be_hidden()
    await expect(note).to_be_visible()

    # a reload reads the feed's history: the badge comes with it
    await alice.page.reload()
    await expect(alice.connection).to_have_attribute("data-state", "online")
    await alice.page.click('#room-list [data-room="news"] .room-button')
    await expect(alice.message("news", first).locator(".app-badge")).to_have_text("app")
    await expect(composer).to_be_hidden()
    assert alice.page_errors == []
