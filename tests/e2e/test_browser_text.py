"""What a message looks like on the page: addresses as links (and nothing else as markup), a
separator for each day, and a paste longer than the limit said before it is sent. End to end
in Chromium (see test_browser.py)."""

from __future__ import annotations

import time

from rawws.chat.service import ChatHandler
from rawws.store import NewMessage
from tests.e2e import test_browser
from tests.e2e.test_browser import OpenPage, StartServer, base_url

try:
    from playwright.async_api import expect
except ImportError:  # pragma: no cover - the browser fixture skips
    pass

browser = test_browser.browser
open_page = test_browser.open_page

DAY_S = 24 * 3600


async def test_addresses_become_links_and_nothing_else_becomes_markup(
    start_server: StartServer, open_page: OpenPage
) -> None:
    server = await start_server()
    page = await open_page(base_url(server), "linda")
    await page.register()
    text = (
        "see https://example.com/a_(b)?q=1, (http://x.test/path). "
        "<b>bold</b> javascript:alert(1) ftp://files.test"
    )
    await page.say(text)
    message = page.messages("lobby").last
    await expect(message.locator(".text")).to_have_text(text)  # every character kept
    links = message.locator(".text a")
    await expect(links).to_have_count(2)
    assert await links.evaluate_all(
        "nodes => nodes.map(n => [n.textContent, n.href, n.rel, n.target])"
    ) == [
        [
            "https://example.com/a_(b)?q=1",
            "https://example.com/a_(b)?q=1",
            "noopener noreferrer nofollow",
            "_blank",
        ],
        [
            "http://x.test/path",
            "http://x.test/path",
            "noopener noreferrer nofollow",
            "_blank",
        ],
    ]
    await expect(message.locator(".text b")).to_have_count(0)
    assert page.page_errors == []


async def test_each_day_has_its_separator(
    start_server: StartServer, open_page: OpenPage
) -> None:
    server = await start_server()
    handler = server.endpoints["/ws"].handler
    assert isinstance(handler, ChatHandler)
    page = await open_page(base_url(server), "dana")
    await page.register()  # in the lobby from here: what is stored is hers to read
    now = time.time()
    # Days of the lobby: two messages three days ago, one yesterday, one this morning
    # (stored with those times), then one of her own.
    await handler.store.append_messages(
        [
            NewMessage("lobby", "old", "first, three days ago", now - 3 * DAY_S),
            NewMessage("lobby", "old", "second, three days ago", now - 3 * DAY_S + 60),
            NewMessage("lobby", "old", "yesterday's", now - DAY_S),
            NewMessage("lobby", "old", "this morning's", now - 60),
        ]
    )
    await page.page.reload()
    await expect(page.connection).to_have_attribute("data-state", "online")
    await expect(page.messages("lobby")).to_have_count(4)
    await page.say("today's own")
    entries = page.page.locator('#messages ol[data-room="lobby"] > li[data-day]')
    labels = await entries.evaluate_all("nodes => nodes.map(n => n.dataset.day)")
    # the stored days in id order; her own message is on this morning's day
    assert labels[1:] == ["Yesterday", "Today"], labels
    assert labels[0] not in ("Today", "Yesterday")
    texts = await entries.evaluate_all(
        "nodes => nodes.map(n => (n.querySelector('.text') || {}).textContent || null)"
    )
    assert texts == ["first, three days ago", "yesterday's", "this morning's"]
    # drawn, not just marked: the separator's words are on the screen
    first = page.page.locator("#messages li[data-day]").first
    assert labels[0] in await first.evaluate(
        "n => getComputedStyle(n, '::before').content"
    )


async def test_a_paste_over_the_limit_is_kept_whole_and_said_before_sending(
    start_server: StartServer, open_page: OpenPage
) -> None:
    server = await start_server()
    page = await open_page(base_url(server), "paula")
    await page.register()
    limit = 4000
    pasted = "é" * 4500  # two bytes each, one character each
    box = page.page.locator("#message-input")
    await box.fill(pasted)
    warning = page.page.locator("#length-warning")
    await expect(warning).to_be_visible()
    await expect(warning).to_contain_text("4,500 characters: the limit is 4,000")
    await page.page.press("#message-input", "Enter")
    await expect(box).to_have_value(pasted)  # nothing cut, nothing sent
    await expect(page.page.locator("#messages li.message.own")).to_have_count(0)
    await box.fill(pasted[:limit])
    await expect(warning).to_be_hidden()
    await page.page.press("#message-input", "Enter")
    await expect(
        page.page.locator('#messages li.message.own[data-state="sent"]')
    ).to_have_count(1)
    await expect(warning).to_be_hidden()
    assert page.page_errors == []
