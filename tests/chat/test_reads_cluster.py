"""Read markers and typing across real nodes: two servers on one PostgreSQL and one real
``redis-server`` (``tests.chat.test_cluster``'s nodes), and a restart.

What another node must do is checked where only that node could have done it: ann's
second connection is on the other node, so her marker can reach it only through the bus;
bob is on the other node, so ann's typing reaches him only through the bus. What must
never arrive is checked after a later message of the same sender on the same path (one
publisher, one channel: in order), so "not yet" cannot pass for "never".
"""

from __future__ import annotations

from rawws.server.server import Server
from tests.chat.test_cluster import connect_as
from tests.chat.test_cluster import start_node as start_node  # the fixture
from tests.support.chat_client import close_quietly, connect_chat
from tests.support.chat_client import login as chat_login


async def second_tab(node: Server, user: str):  # type: ignore[no-untyped-def]
    return await connect_chat(node, await chat_login(node.port, user), user)


async def test_a_marker_and_typing_cross_nodes_and_the_marker_outlives_them(
    start_node,
) -> None:
    a, b = await start_node(), await start_node()
    ann_a = await connect_as(a, "ann")
    ann_b, bob_b = await second_tab(b, "ann"), await connect_as(b, "bob")
    cy_a = await connect_as(a, "cyd")  # connected, never joins plaza
    clients = [ann_a, ann_b, bob_b, cy_a]
    try:
        for client in (ann_a, ann_b, bob_b):
            await client.join("plaza")
        for n in range(3):
            await bob_b.say("plaza", f"b{n}", f"{n}")
            await bob_b.wait_ack(f"{n}")
        newest = bob_b.acks["2"]["id"]
        await ann_a.wait_message_id("plaza", newest)
        await ann_a.send(type="read", room="plaza", id=newest - 1)
        for client in (ann_a, ann_b):
            await client.wait_frame("read", room="plaza", last_read=newest - 1)
        await ann_a.send(type="typing", room="plaza")
        typing = await bob_b.wait_frame("typing", room="plaza")
        assert typing == {
            "type": "typing",
            "room": "plaza",
            "user": "ann",
            "expires_in": 5,
        }
        await ann_a.say("plaza", "after", "s")
        for client in (ann_b, bob_b):
            await client.wait_message_id("plaza", newest + 1)
        assert ann_a.of_type("typing") == ann_b.of_type("typing") == []
        assert cy_a.of_type("typing") == [] and bob_b.of_type("read") == []
        # an older read on the other node changes nothing anywhere
        await ann_b.send(type="read", room="plaza", id=newest - 2)
        await ann_b.send(type="read", room="plaza", id=newest + 1)
        await ann_a.wait_frame("read", room="plaza", last_read=newest + 1)
        assert [f["last_read"] for f in ann_b.of_type("read")] == [
            newest - 1,
            newest + 1,
        ]
        await close_quietly(*clients)
        clients = []
        await a.shutdown()  # each node writes what it has pending as it closes
        await b.shutdown()
        c = await start_node()
        ann_c = await second_tab(c, "ann")
        clients = [ann_c]
        joined = await ann_c.join("plaza")
        assert (joined["last_read"], joined["unread"]) == (newest + 1, 0)
    finally:
        await close_quietly(*clients)
