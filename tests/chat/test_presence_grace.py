"""A reload is not a departure: a user whose last connection closed stays present for
``--presence-grace`` (``Hub`` lingering), so the room sees no "left" and "joined" for it;
one who does not come back is gone once the grace ends, on every node. An explicit
``leave``, a kick or a ban is a departure at once.
"""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from rawws.chat.hub import Hub
from rawws.server.server import Server
from tests.chat.test_cluster import connect_as, handler, start_node
from tests.support.chat_client import ChatClient, close_quietly, connect_chat
from tests.support.chat_client import login as chat_login
from tests.support.helpers import wait_for_condition

start_node = start_node  # the fixture, by name

GRACE_S = 1.5


class Conn:
    def __init__(self, user: str) -> None:
        self.user = user

    def deliver(
        self, room: str, message_id: int | None, text: str, frame: bytes
    ) -> None:
        return None


def test_a_closed_connection_lingers_and_an_explicit_leave_does_not() -> None:
    hub = Hub(grace_s=5.0)
    tab = Conn("ann")
    assert hub.join(tab, "lobby") is True
    assert hub.leave(tab, "lobby", now=100.0) is False  # closed: lingering
    assert hub.users("lobby") == ["ann"] and hub.presence() == {"lobby": ["ann"]}
    assert not hub.occupied("lobby")  # no connection to deliver to
    assert hub.expire(104.9) == []
    again = Conn("ann")
    assert hub.join(again, "lobby") is False  # back within the grace: never gone
    assert hub.expire(1000.0) == []
    assert hub.leave(again, "lobby") is True  # asked to leave: gone at once
    assert hub.users("lobby") == [] and hub.presence() == {}
    last = Conn("ann")
    hub.join(last, "lobby")
    hub.leave(last, "lobby", now=200.0)
    assert hub.expire(205.0) == [("lobby", "ann")]
    assert hub.users("lobby") == [] and hub.presence() == {}
    assert hub.join(Conn("ann"), "lobby") is True  # a new arrival


@settings(max_examples=300)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["open", "close", "leave", "tick"]),
            st.sampled_from(["ann", "bob"]),
            st.floats(min_value=0.0, max_value=4.0),
        ),
        max_size=40,
    )
)
def test_arrivals_and_departures_alternate_and_match_who_is_there(
    steps: list[tuple[str, str, float]],
) -> None:
    """What the service announces from the hub's answers (``joined`` on a ``True`` join,
    ``left`` on a ``True`` leave or an expiry): per user it alternates, starting with a
    join, and at every step a user is listed exactly when connected or within the grace."""
    grace = 2.0
    hub = Hub(grace_s=grace)
    now = 0.0
    open_: dict[str, list[Conn]] = {"ann": [], "bob": []}
    closed_at: dict[str, float] = {}
    announced: dict[str, list[str]] = {"ann": [], "bob": []}
    for action, user, wait in steps:
        now += wait
        for _, gone in hub.expire(now):
            announced[gone].append("left")
        if action == "open":
            conn = Conn(user)
            open_[user].append(conn)
            if hub.join(conn, "lobby"):
                announced[user].append("joined")
        elif open_[user]:
            conn = open_[user].pop()
            closed = action == "close"
            if hub.leave(conn, "lobby", now if closed else None):
                announced[user].append("left")
            if not open_[user] and closed:
                closed_at[user] = now
            elif not open_[user]:
                closed_at.pop(user, None)
        for who in ("ann", "bob"):
            events = announced[who]
            assert all(e != f for e, f in zip(events, events[1:], strict=False)), events
            assert not events or events[0] == "joined", events
            lingering = who in closed_at and now < closed_at[who] + grace
            expected = bool(open_[who]) or lingering
            listed = who in hub.users("lobby")
            assert listed == expected, (who, now, closed_at, open_[who])
            assert listed == (bool(events) and events[-1] == "joined")


async def presence_about(client: ChatClient, user: str, start: int) -> list[str]:
    return [f["event"] for f in client.of_type("presence", start=start, user=user)]


async def test_a_reload_on_another_node_is_no_departure_and_a_user_gone_leaves_everywhere(
    start_node,
) -> None:
    a: Server = await start_node(presence_grace_s=GRACE_S)
    b: Server = await start_node(presence_grace_s=GRACE_S)
    bob = await connect_as(b, "bob")
    ann = await connect_as(a, "ann")
    try:
        await bob.join("lobby")
        await ann.join("lobby")
        await bob.wait_frame("presence", room="lobby", user="ann", event="joined")
        start = len(bob.frames)
        # Ann reloads: her connection on node a closes, a new one opens on node b.
        await close_quietly(ann)
        ann = await connect_chat(b, await chat_login(b.port, "ann"), "ann")
        assert "ann" in (await ann.join("lobby"))["users"]
        await asyncio.sleep(GRACE_S * 2)  # past a's grace: its lingering ann has ended
        assert await presence_about(bob, "ann", start) == []
        assert handler(b).presence.users("lobby") == ["ann", "bob"]

        # Ann goes for good: present through the grace, then gone on every node.
        await close_quietly(ann)
        assert handler(b).presence.users("lobby") == ["ann", "bob"]
        await bob.wait_frame("presence", start=start, user="ann", event="left")
        await wait_for_condition(
            lambda: handler(a).presence.users("lobby") == ["bob"],
            what="ann gone on node a",
        )
        assert await presence_about(bob, "ann", start) == ["left"]
    finally:
        await close_quietly(bob)


async def test_an_explicit_leave_is_a_departure_at_once(start_node) -> None:
    a: Server = await start_node(presence_grace_s=60.0)
    bob = await connect_as(a, "bob")
    ann = await connect_as(a, "ann")
    try:
        await bob.join("lobby")
        await ann.join("lobby")
        await bob.wait_frame("presence", room="lobby", user="ann", event="joined")
        await ann.send(type="leave", room="lobby")
        # within the test's wait, far inside a 60 s grace: no grace for a leave
        await bob.wait_frame("presence", room="lobby", user="ann", event="left")
    finally:
        await close_quietly(ann)
        await close_quietly(bob)
