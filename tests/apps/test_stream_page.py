"""The page and a streamed message, end to end in Chromium (see tests/e2e/test_browser.py): a
bubble that grows with each chunk, a member who arrives mid-stream sees the text so far in it,
and the finished message takes its place (one message, no bubble left)."""

from __future__ import annotations

from rawws.apps.keys import PUBLISH, ROOMS
from tests.apps.key_rows import api, live_key
from tests.apps.test_streams import append, open_stream
from tests.e2e import test_browser
from tests.e2e.test_browser import OpenPage, StartServer, base_url

try:
    from playwright.async_api import expect
except ImportError:  # pragma: no cover - the browser fixture skips
    pass

browser = test_browser.browser
open_page = test_browser.open_page


async def test_a_stream_grows_in_a_bubble_then_becomes_the_message(
    start_server: StartServer, open_page: OpenPage
) -> None:
    server = await start_server()
    key = await live_key(server, "oracle", scopes=(PUBLISH, ROOMS))
    # made first: the page's join of lobby may still be on its way when the stream opens
    made = await api(server.port, key, "rooms_create", room="lobby", kind="public")
    assert made.status == 200, made.body
    page = await open_page(base_url(server), "linda")
    await page.register()  # online; it joins lobby
    stream = await open_stream(server, key, "lobby")
    bubble = page.page.locator('#messages li.message[data-state="streaming"]')
    await append(server, key, stream, "Once upon ")
    await expect(bubble.locator(".text")).to_have_text("Once upon ")
    await append(server, key, stream, "a time")
    await expect(bubble.locator(".text")).to_have_text("Once upon a time")
    await expect(bubble.locator(".author")).to_have_text("oracle")
    late = await open_page(base_url(server), "marc")
    await late.register()
    late_bubble = late.page.locator('#messages li.message[data-state="streaming"]')
    await expect(late_bubble.locator(".text")).to_have_text("Once upon a time")
    await append(server, key, stream, ", there was")
    reply = await api(server.port, key, "stream_finish", stream=stream)
    for chat in (page, late):
        final = chat.message("lobby", reply.json["id"])
        await expect(final.locator(".text")).to_have_text("Once upon a time, there was")
        streaming = chat.page.locator('#messages li.message[data-state="streaming"]')
        await expect(streaming).to_have_count(0)
        assert chat.page_errors == []
