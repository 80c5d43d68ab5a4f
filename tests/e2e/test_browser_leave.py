"""Joining a public room and leaving it for good on the browser page, end to end: a real server and
headless Chromium (see test_browser.py).

A user's first join of a public room, and their `leave` with `for_good`, are membership events in
the room's ids (docs/protocol.md, "Membership in the room's stream"): the other members' pages show
them in words, live and in `history`. "Leave for good" takes the room off the page once the
server's `left` answers; the user's other pages are told with `removed` (reason `left`). The owner
is not offered the control, and is refused in words if it is clicked anyway.
"""

from __future__ import annotations

import json
import re

from tests.e2e import test_browser
from tests.e2e.test_browser import OpenPage, StartServer, base_url
from tests.e2e.test_browser_rooms import create_private_room

try:
    from playwright.async_api import expect
except ImportError:  # pragma: no cover - the browser fixture skips
    pass

# The browser tests' fixtures, shared by name (pytest finds fixtures among a module's names).
browser = test_browser.browser
open_page = test_browser.open_page

ROOM = "plaza"


def events(page, room: str):
    return page.page.locator(f'#messages ol[data-room="{room}"] > li.event')


async def test_a_member_joins_a_public_room_and_leaves_it_for_good(
    start_server: StartServer, open_page: OpenPage
) -> None:
    """bob joins a public room where alice is: alice's page says "bob joined". bob clicks "Leave
    for good" (sent as `leave` with `for_good`): his page says so and drops the room, and so does
    his other page (told with `removed`); alice's page says bob left for good, in the timeline
    and after a reload from `history`. The × button stays a plain leave."""
    server = await start_server()
    alice = await open_page(base_url(server), "alice")
    bob = await open_page(base_url(server), "bob")
    bob_sent: list[str] = []
    bob.page.on(
        "websocket", lambda ws: ws.on("framesent", lambda frame: bob_sent.append(frame))
    )
    await alice.register()
    await bob.register()
    bob_again = await open_page(base_url(server), "bob")  # bob's second tab
    await bob_again.page.goto(bob_again.base_url)
    await bob_again.sign_in()

    await alice.join(ROOM)
    await alice.say("hello plaza")
    await bob.join(ROOM)
    await expect(events(alice, ROOM).last).to_contain_text("bob joined")
    await expect(alice.member("bob")).to_have_count(1)
    await bob_again.join(ROOM)
    await expect(bob_again.member("bob")).to_have_count(1)

    await expect(bob.member("alice")).to_have_count(1)
    part = bob.page.locator("#leave-for-good")
    await expect(part).to_be_visible()
    await expect(part).to_have_text("Leave for good")
    await part.click()
    await expect(bob.page.locator("#notice-text")).to_have_text(
        f"You left {ROOM} for good."
    )
    await expect(bob.room_button(ROOM)).to_have_count(0)
    assert {"type": "leave", "room": ROOM, "for_good": True, "ref": f"part:{ROOM}"} in [
        json.loads(frame) for frame in bob_sent if '"leave"' in frame
    ]
    saved = await bob.page.evaluate("sessionStorage.getItem('rawws.rooms')")
    assert ROOM not in json.loads(saved)

    await expect(bob_again.page.locator("#notice-text")).to_have_text(
        f"You left {ROOM} for good."
    )
    await expect(bob_again.room_button(ROOM)).to_have_count(0)
    assert "kicked" not in await bob_again.page.locator("#notice-text").inner_text()

    await expect(events(alice, ROOM).last).to_contain_text("bob left for good")
    await expect(alice.member("bob")).to_have_count(0)
    await alice.say("after bob left")

    # A fresh page reads the events from `history`, in words, in their places.
    await alice.page.reload()
    await expect(alice.connection).to_have_attribute("data-state", "online")
    await alice.room_button(ROOM).click()
    await expect(events(alice, ROOM).filter(has_text="bob")).to_have_text(
        [re.compile("bob joined"), re.compile("bob left for good")]
    )
    await expect(alice.messages(ROOM)).to_have_text(
        [re.compile("hello plaza"), re.compile("after bob left")]
    )

    # The × stays a plain leave: no `for_good`, and the room goes at once.
    bob_sent.clear()
    await bob.join("lobby2")
    await expect(bob.member("bob")).to_have_count(1)  # joined: a leave is sent
    await bob.page.locator('#room-list [data-room="lobby2"] .leave-button').click()
    await expect(bob.room_button("lobby2")).to_have_count(0)
    leaves = [json.loads(frame) for frame in bob_sent if '"leave"' in frame]
    assert leaves == [{"type": "leave", "room": "lobby2"}]
    for page in (alice, bob, bob_again):
        assert page.page_errors == []
        assert await page.csp_violations() == []


async def test_the_owner_is_not_offered_leave_for_good_and_is_refused_in_words(
    start_server: StartServer, open_page: OpenPage
) -> None:
    """The owner of a private room sees no "Leave for good" (nor anyone in a direct room); a
    click that reaches it anyway is refused by the server, and the page says why, keeping the
    room."""
    from rawws.chat.doors import direct_name

    server = await start_server()
    ann = await open_page(base_url(server), "ann")
    bob = await open_page(base_url(server), "bob")
    await ann.register()
    await bob.register()
    den = await create_private_room(ann, "den")
    await expect(ann.member("ann")).to_contain_text("owner")
    part = ann.page.locator("#leave-for-good")
    await expect(part).to_be_hidden()

    await part.dispatch_event("click")  # as if it were offered
    await expect(ann.page.locator("#notice-text")).to_have_text(
        f"You own {den}: make someone else its owner first."
    )
    await expect(ann.room_button(den)).to_have_count(1)
    await expect(ann.page.locator("#room-name")).to_have_text(den)

    # A plain member of the lobby is offered it; nobody is, in a direct room.
    await ann.room_button("lobby").click()
    await expect(part).to_be_visible()
    await ann.member("bob").locator(".member-open").click()
    await expect(ann.room_button(direct_name("ann", "bob"))).to_have_attribute(
        "aria-current", "true"
    )
    await expect(part).to_be_hidden()
    assert ann.page_errors == []
    assert await ann.csp_violations() == []
