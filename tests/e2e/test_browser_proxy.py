"""The page behind nginx, in Chromium: over deploy/nginx.conf as shipped (WebSocket), and behind
proxies configured otherwise, where the client library falls back (docs/transports.md).

* nginx that does not pass ``Upgrade``/``Connection`` on (a variant of deploy/nginx.conf written
  here): the upgrade never happens, the page says "SSE" and chats over /sse and POST /send;
* the same, buffering and compressing responses whatever rawws says (``X-Accel-Buffering``
  ignored): the event stream never arrives in time, the page says "long-polling" and chats over
  /poll.

Two users' pages on one real `rawws serve` behind a real nginx; see test_browser.py for the
browser fixtures and tests/support/nginx.py for nginx.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.e2e import test_browser
from tests.e2e.test_browser import OpenPage
from tests.support.nginx import Nginx, nginx
from tests.support.nodes import Node, start_node

try:
    from playwright.async_api import expect
except ImportError:  # pragma: no cover - the browser fixture skips
    pass

__all__ = ["nginx"]  # the fixture, imported to be found
browser = test_browser.browser
open_page = test_browser.open_page

UPGRADE_LINES = re.compile(
    r"^\s*proxy_set_header (Upgrade|Connection) .*\n", flags=re.MULTILINE
)


def without_upgrade(conf: str) -> str:
    """deploy/nginx.conf with the two lines that pass an upgrade on taken out."""
    text, removed = UPGRADE_LINES.subn("", conf)
    assert removed == 2, "deploy/nginx.conf passes Upgrade and Connection on"
    return text


def buffering_without_upgrade(conf: str) -> str:
    """No upgrade, and responses held back: buffered whatever rawws says, and compressed (gzip
    keeps a small event in its window until more comes), as proxies that break event streams do."""
    text, changed = re.subn(
        r"proxy_buffering off;",
        "proxy_buffering on; proxy_ignore_headers X-Accel-Buffering;"
        " gzip on; gzip_types text/event-stream application/json;",
        without_upgrade(conf),
    )
    assert changed == 1
    return text


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    started = await start_node(tmp_path / "node", "--forwarded-allow-ips", "127.0.0.1")
    try:
        yield started
    finally:
        await started.stop()


@pytest.mark.parametrize(
    ("variant", "transport", "label"),
    [
        (None, "websocket", "WebSocket"),
        (without_upgrade, "sse", "SSE"),
        (buffering_without_upgrade, "poll", "long-polling"),
    ],
    ids=["as-shipped", "no-upgrade", "no-upgrade-buffering"],
)
async def test_the_page_chats_through_nginx_over_what_gets_through(
    nginx: Nginx,
    node: Node,
    open_page: OpenPage,
    variant: Callable[[str], str] | None,
    transport: str,
    label: str,
) -> None:
    port = await nginx.start([node.port], variant)
    base = f"http://127.0.0.1:{port}/"
    ann = await open_page(base, "ann")
    bob = await open_page(base, "bob")
    for page in (ann, bob):
        await page.register()
        await expect(page.page.locator("#transport")).to_have_attribute(
            "data-transport", transport
        )
        await expect(page.page.locator("#transport")).to_have_text(label)
        await page.join("proxied")
    await expect(ann.member("bob")).to_be_visible()
    await ann.say(f"hello over {label}")
    await expect(bob.messages("proxied").last.locator(".text")).to_have_text(
        f"hello over {label}"
    )
    await bob.say("and back")
    await expect(ann.messages("proxied").last.locator(".text")).to_have_text("and back")
    if transport != "websocket":
        assert ann.websocket_urls, "the page tried a WebSocket first"
    for page in (ann, bob):
        assert page.page_errors == []
        assert await page.csp_violations() == []
