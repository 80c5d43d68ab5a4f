"""The page with the features a chat user expects: edit and delete from a message, "(edited)"
and tombstones, typing, unread counts from the server's read markers and a second tab that
hears them. End to end in Chromium against a real server (see test_browser.py)."""

from __future__ import annotations

from tests.e2e import test_browser
from tests.e2e.test_browser import ChatPage, OpenPage, StartServer, base_url

try:
    from playwright.async_api import expect
except ImportError:  # pragma: no cover - the browser fixture skips
    pass

browser = test_browser.browser
open_page = test_browser.open_page


def own_message(page: ChatPage, text: str):
    return page.page.locator("#messages li.message.own", has_text=text)


async def test_edit_and_delete_reach_everyone_and_leave_a_tombstone(
    start_server: StartServer, open_page: OpenPage
) -> None:
    server = await start_server()
    alice = await open_page(base_url(server), "alice")
    bob = await open_page(base_url(server), "bob")
    await alice.register()
    await bob.register()
    await alice.say("first version")
    await expect(bob.messages("lobby").last).to_contain_text("first version")

    message = own_message(alice, "first version")
    await message.hover()
    await message.locator('button[data-action="edit"]').click()
    await message.locator(".edit-input").fill("second version")
    await message.locator(".edit-input").press("Enter")
    for page in (alice, bob):
        last = page.messages("lobby").last
        await expect(last.locator(".text")).to_have_text("second version")
        await expect(last.locator(".edited")).to_have_text("(edited)")

    # Bob is a plain member: neither Edit nor Delete on Alice's message.
    theirs = bob.messages("lobby").last
    await theirs.hover()
    await expect(theirs.locator(".message-actions")).to_have_count(0)

    message = own_message(alice, "second version")
    await message.hover()
    await message.locator('button[data-action="delete"]').click()
    await message.locator('button[data-action="delete-yes"]').click()
    for page in (alice, bob):
        last = page.messages("lobby").last
        await expect(last.locator(".text")).to_have_text("Message deleted.")
        assert "second version" not in await page.page.content()

    # A reload reads the room's history: the same state, from the server.
    await bob.page.reload()
    await expect(bob.connection).to_have_attribute("data-state", "online")
    await expect(bob.messages("lobby").last.locator(".text")).to_have_text(
        "Message deleted."
    )
    assert alice.page_errors == bob.page_errors == []


async def test_typing_is_shown_to_others_and_goes_by_itself(
    start_server: StartServer, open_page: OpenPage
) -> None:
    server = await start_server()
    alice = await open_page(base_url(server), "alice")
    bob = await open_page(base_url(server), "bob")
    await alice.register()
    await bob.register()
    await alice.page.fill("#message-input", "I am writing someth")
    await expect(bob.page.locator("#typing-line")).to_have_text("alice is typing…")
    await expect(alice.page.locator("#typing-line")).to_have_text("")  # never echoed
    # nothing more typed: it goes by itself (the server says for how long)
    await expect(bob.page.locator("#typing-line")).to_have_text("", timeout=15_000)
    # a message from the typist ends it at once
    await alice.page.fill("#message-input", "I am writing something")
    await expect(bob.page.locator("#typing-line")).to_have_text("alice is typing…")
    await alice.page.press("#message-input", "Enter")
    await expect(bob.messages("lobby").last).to_contain_text("I am writing something")
    # read at once, not waited for: the message itself cleared it (its expiry is seconds away)
    assert await bob.page.locator("#typing-line").text_content() == ""


async def test_unread_counts_come_from_the_server_and_a_second_tab_hears_the_read(
    start_server: StartServer, open_page: OpenPage
) -> None:
    server = await start_server()
    alice = await open_page(base_url(server), "alice")
    bob = await open_page(base_url(server), "bob")
    await alice.register()
    await bob.register()
    await bob.join("side")
    await bob.page.click('#room-list [data-room="lobby"] .room-button')
    await alice.join("side")
    for text in ("one", "two", "three"):
        await alice.say(text)
    badge = bob.room_button("side").locator(".unread")
    await expect(badge).to_have_text("3")

    # A second tab of Bob's: the rooms he belongs to, and the unread count the server keeps.
    second = ChatPage(bob.context, await bob.context.new_page(), "bob", bob.base_url)
    await second.page.goto(second.base_url)
    await expect(second.connection).to_have_attribute("data-state", "online")
    await second.page.click('#room-list [data-room="lobby"] .room-button')
    second_badge = second.room_button("side").locator(".unread")
    await expect(second_badge).to_have_text("3")

    # Bob reads #side in the first tab: a divider marks where the new messages start, and
    # the second tab's count goes (the read marker reached every connection of his).
    await bob.page.click('#room-list [data-room="side"] .room-button')
    divider = bob.page.locator('#messages ol[data-room="side"] .new-divider')
    await expect(divider).to_have_count(1)
    await expect(
        bob.page.locator('#messages ol[data-room="side"] li.message:has(.new-divider)')
    ).to_contain_text("one")
    await expect(badge).to_have_count(0)
    await expect(second_badge).to_have_count(0)
    assert bob.page_errors == second.page_errors == []
