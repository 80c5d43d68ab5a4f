"""One sign-in for every tab and across a browser restart, with the refresh token out of the
page's reach (an HttpOnly cookie), and the rooms one belongs to remembered by the server.
End to end in Chromium (see test_browser.py)."""

from __future__ import annotations

from rawws.accounts.session_cookie import COOKIE_NAME
from tests.e2e import test_browser
from tests.e2e.test_browser import ChatPage, OpenPage, StartServer, base_url

try:
    from playwright.async_api import Browser, expect
except ImportError:  # pragma: no cover - the browser fixture skips
    pass

browser = test_browser.browser
open_page = test_browser.open_page


async def scripts_can_see(page: ChatPage, token: str) -> list[str]:
    """Where a script on the page finds ``token``: cookies, both storages."""
    return await page.page.evaluate(
        """(token) => {
            const found = [];
            if (document.cookie.includes(token)) found.push("document.cookie");
            for (const [name, store] of [["sessionStorage", sessionStorage], ["localStorage", localStorage]]) {
                for (let i = 0; i < store.length; i++) {
                    if ((store.getItem(store.key(i)) || "").includes(token)) found.push(name);
                }
            }
            return found;
        }""",
        token,
    )


async def refresh_cookie(page: ChatPage) -> dict:
    [cookie] = [c for c in await page.context.cookies() if c["name"] == COOKIE_NAME]
    return dict(cookie)


async def test_a_second_tab_and_a_restarted_browser_are_signed_in_from_the_cookie(
    start_server: StartServer, open_page: OpenPage, browser: Browser
) -> None:
    server = await start_server()
    first = await open_page(base_url(server), "tabby")
    await first.register()
    await first.join("tabs-room")

    cookie = await refresh_cookie(first)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/auth"
    assert await scripts_can_see(first, cookie["value"]) == []

    # A second tab of the same browser: no form, the same user, the rooms one is a member of.
    second = ChatPage(
        first.context, await first.context.new_page(), "tabby", first.base_url
    )
    await second.page.goto(second.base_url)
    await expect(second.connection).to_have_attribute("data-state", "online")
    await expect(second.page.locator("#me-name")).to_have_text("tabby")
    await expect(second.room_button("tabs-room")).to_be_visible()
    await second.page.click(
        '#room-list [data-room="tabs-room"] .room-button'
    )  # remembered by the server, not by the first tab
    await second.say("said in the second tab")
    await expect(first.messages("tabs-room")).to_contain_text(
        ["said in the second tab"]
    )

    # The browser restarts: a new context with what the browser keeps on disk (cookies,
    # localStorage), without the tabs' sessionStorage.
    state = await first.context.storage_state()
    assert not any(
        "tabs-room" in str(origin) for origin in state.get("origins", [])
    )  # the page keeps no list of its own where a restart would find it
    restarted_context = await browser.new_context(storage_state=state)
    try:
        restarted = ChatPage(
            restarted_context,
            await restarted_context.new_page(),
            "tabby",
            first.base_url,
        )
        await restarted.page.goto(restarted.base_url)
        await expect(restarted.connection).to_have_attribute("data-state", "online")
        await expect(restarted.room_button("tabs-room")).to_be_visible()
        await expect(restarted.room_button("lobby")).to_be_visible()

        # Signing out in one place ends the login everywhere: the other tabs show the form.
        await restarted.page.click("#logout")
        await expect(restarted.page.locator("#auth-view")).to_be_visible()
        for page in (first, second):
            await expect(page.page.locator("#auth-view")).to_be_visible()
        assert first.page_errors == second.page_errors == restarted.page_errors == []
    finally:
        await restarted_context.close()
