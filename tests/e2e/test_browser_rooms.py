"""Private rooms, direct rooms and moderation on the browser page, end to end: a real server and
headless Chromium (see test_browser.py).

The owner's page moderates with the member list's controls; the member's page is refused in words
while muted and told when it is kicked; membership events are shown in words in the timeline, live
and in `history`, and their ids count like messages' (docs/protocol.md, "Membership in the room's
stream").
"""

from __future__ import annotations

import json
import re

from tests.e2e import test_browser
from tests.e2e.test_browser import OpenPage, StartServer, base_url

try:
    from playwright.async_api import WebSocketRoute, expect
except ImportError:  # pragma: no cover - the browser fixture skips
    pass

# The browser tests' fixtures, shared by name (pytest finds fixtures among a module's names).
browser = test_browser.browser
open_page = test_browser.open_page


async def create_private_room(page, label: str) -> str:
    """``page``'s user makes a private room with the "New private room" control: its name."""
    await page.page.fill("#create-room", label)
    await page.page.press("#create-room", "Enter")
    title = page.page.locator("#room-name")
    await expect(title).to_have_text(re.compile(rf"^{label}\.[a-z0-9]{{8}}$"))
    name = await title.text_content()
    assert name is not None
    return name


def events(page, room: str):
    return page.page.locator(f'#messages ol[data-room="{room}"] > li.event')


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

    den = await create_private_room(ann, "den")
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


async def test_the_owner_mutes_and_kicks_a_member_on_the_page(
    start_server: StartServer, open_page: OpenPage
) -> None:
    """ann makes a private room and invites bob, who joins; bob sees no moderation controls, ann
    does. ann mutes bob for a minute: bob's say is refused with the time it ends. ann kicks bob:
    bob's page says so and drops the room, and nothing ann says afterwards reaches bob's page.
    ann's page shows each event in words, in id order between the messages; after a reload
    they come back in words from `history`."""
    server = await start_server()
    ann = await open_page(base_url(server), "ann")
    bob = await open_page(base_url(server), "bob")
    bob_frames: list[str] = []
    bob.page.on(
        "websocket",
        lambda ws: ws.on("framereceived", lambda frame: bob_frames.append(frame)),
    )
    await ann.register()
    await bob.register()

    den = await create_private_room(ann, "den")
    await ann.page.fill("#invite-user", "bob")
    await ann.page.press("#invite-user", "Enter")
    await expect(events(ann, den)).to_have_text([re.compile("bob was invited by ann")])
    await expect(ann.message(den, 1)).to_contain_text("bob was invited by ann")

    listed = bob.page.locator(f'#directory [data-room="{den}"] .room-button')
    await listed.click()
    await expect(bob.room_button(den)).to_have_attribute("aria-current", "true")
    await expect(bob.member("ann")).to_contain_text("owner")
    await expect(bob.page.locator("#member-list .member-actions")).to_have_count(0)
    await expect(bob.page.locator("#invite-form")).to_be_hidden()  # a plain member
    await expect(ann.page.locator("#invite-form")).to_be_visible()
    await bob.say("hi all")
    await expect(ann.messages(den)).to_contain_text(["hi all"])

    controls = ann.member("bob").locator(".member-actions")
    await expect(controls.locator("[data-action]")).to_have_count(5)
    await expect(controls.locator('[data-action="moderator"]')).to_have_text(
        "Make moderator"
    )
    await controls.locator("select").select_option("60")
    await controls.locator('[data-action="mute"]').click()
    await expect(ann.page.locator("#notice-text")).to_have_text(
        f"Done: bob was muted in {den}."
    )
    await expect(events(ann, den).nth(1)).to_contain_text(
        re.compile(r"bob was muted by ann until \d")
    )

    await bob.page.fill("#message-input", "can I still talk?")
    await bob.page.press("#message-input", "Enter")
    await expect(bob.page.locator("#notice-text")).to_have_text(
        re.compile(r"^You're muted in this room until \d.+\.$")
    )
    await expect(bob.page.locator('li.message[data-state="failed"]')).to_contain_text(
        "Not sent: you're muted."
    )

    await controls.locator('[data-action="kick"]').click()
    await expect(bob.page.locator("#notice-text")).to_have_text(
        f"You were kicked from {den} by ann."
    )
    await expect(bob.room_button(den)).to_have_count(0)
    await expect(events(ann, den).nth(2)).to_contain_text("bob was kicked by ann")
    await expect(ann.member("bob")).to_have_count(0)
    await ann.say("said after the kick")
    assert not [frame for frame in bob_frames if "said after the kick" in frame]
    assert "after the kick" not in await bob.page.locator("#messages").inner_text()
    saved = await bob.page.evaluate("sessionStorage.getItem('rawws.rooms')")
    assert den not in json.loads(saved)

    # Events and messages share the room's ids: 1 invited, 2 bob's hi, 3 muted, (bob's refused
    # say took none), 4 kicked, 5 ann's message.
    ids = await ann.page.locator(
        f'#messages ol[data-room="{den}"] > li[data-id]'
    ).evaluate_all("nodes => nodes.map(n => Number(n.dataset.id))")
    assert ids == [1, 2, 3, 4, 5]

    # A fresh page reads the events from `history`, in words, in their places.
    await ann.page.reload()
    await expect(ann.connection).to_have_attribute("data-state", "online")
    await ann.room_button(den).click()
    await expect(events(ann, den)).to_have_text(
        [
            re.compile("bob was invited by ann"),
            re.compile("bob was muted by ann until"),
            re.compile("bob was kicked by ann"),
        ]
    )
    await expect(ann.messages(den)).to_have_text(
        [re.compile("hi all"), re.compile("said after the kick")]
    )
    for page in (ann, bob):
        assert page.page_errors == []
        assert await page.csp_violations() == []


async def test_the_page_shows_a_refused_moderation_and_a_role_change(
    start_server: StartServer, open_page: OpenPage
) -> None:
    """A moderator's page offers no controls for the owner; the owner makes bob a moderator and
    back, shown in words on both pages; a refused command (unmute of a user not muted) is told
    in the notice area in words. A dropped connection joins again with `since` the last event's
    id; a ban drops the room from bob's page with a notice."""
    server = await start_server()
    ann = await open_page(base_url(server), "ann")
    bob = await open_page(base_url(server), "bob")
    sockets: list[WebSocketRoute] = []  # ann's, relayed as they are: to drop one below
    sent: list[str] = []

    def relay(ws: WebSocketRoute) -> None:
        sockets.append(ws)
        ws.connect_to_server()

    await ann.page.route_web_socket(re.compile(r"/ws\?"), relay)
    ann.page.on(
        "websocket", lambda ws: ws.on("framesent", lambda frame: sent.append(frame))
    )
    await ann.register()
    await bob.register()
    club = await create_private_room(ann, "club")
    await ann.page.fill("#invite-user", "bob")
    await ann.page.press("#invite-user", "Enter")
    await bob.page.locator(f'#directory [data-room="{club}"] .room-button').click()
    await expect(bob.room_button(club)).to_have_attribute("aria-current", "true")

    controls = ann.member("bob").locator(".member-actions")
    await controls.locator('[data-action="unmute"]').click()
    await expect(ann.page.locator("#notice-text")).to_contain_text("can't be done")

    await controls.locator('[data-action="moderator"]').click()
    await expect(events(ann, club).last).to_contain_text(
        "bob is now moderator (by ann)"
    )
    await expect(events(bob, club).last).to_contain_text(
        "bob is now moderator (by ann)"
    )
    await expect(ann.member("bob")).to_contain_text("moderator")
    await expect(controls.locator('[data-action="member"]')).to_have_text("Make member")
    # bob moderates now, but not the owner.
    await expect(bob.member("ann")).to_contain_text("owner")
    await expect(bob.page.locator("#member-list .member-actions")).to_have_count(0)
    await controls.locator('[data-action="member"]').click()
    await expect(events(bob, club).last).to_contain_text("bob is now member (by ann)")

    # The room's last id is an event's (1 invited, 2 and 3 the roles): a dropped connection
    # joins again with `since` 3, and nothing is shown twice.
    await expect(events(ann, club).last).to_contain_text("bob is now member (by ann)")
    sent.clear()
    await sockets[-1].close()
    await expect(ann.connection).not_to_have_attribute("data-state", "online")
    await expect(ann.connection).to_have_attribute("data-state", "online")
    joins = [json.loads(frame) for frame in sent if '"join"' in frame]
    assert {"type": "join", "room": club, "ref": f"join:{club}", "since": 3} in joins
    await ann.say("back again")
    await expect(ann.message(club, 4)).to_contain_text("back again")
    await expect(events(ann, club)).to_have_count(3)

    # A ban: bob's page is told by whom and drops the room; ann's shows the event in its place.
    await ann.member("bob").locator('.member-actions [data-action="ban"]').click()
    await expect(bob.page.locator("#notice-text")).to_have_text(
        f"You were banned from {club} by ann."
    )
    await expect(bob.room_button(club)).to_have_count(0)
    await expect(ann.message(club, 5)).to_contain_text("bob was banned by ann")
    for page in (ann, bob):
        assert page.page_errors == []
