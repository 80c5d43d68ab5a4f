"""A kick across nodes while the bus is down: two nodes on one PostgreSQL and a real
``redis-server``, which is killed before the kick and started again after it.

Node A stores the kick (and messages after it) while Redis is down; node B, where the
kicked user is connected, hears nothing. When Redis returns, B catches up from the
store: the kick comes first in the room's order, so the kicked user is told
(``removed``, with the kick's id) and receives nothing stored after it.
"""

from __future__ import annotations

import asyncio

from tests.chat.test_cluster import bus
from tests.chat.test_cluster import start_node as start_node  # a fixture
from tests.support.chat_client import close_quietly, connect_chat, new_users
from tests.support.redis_server import RedisServer


async def test_a_kick_made_while_redis_is_down_holds_on_the_other_node_when_it_returns(
    start_node, redis_server: RedisServer
) -> None:
    a, b = await start_node(), await start_node()
    tokens = await new_users(a, "ann", "bob")
    ann = await connect_chat(a, tokens["ann"], "ann")
    bob = await connect_chat(b, tokens["bob"], "bob")
    try:
        await ann.send(type="create", room="den", kind="private", ref="c")
        den = (await ann.wait_frame("created", ref="c"))["room"]
        await ann.join(den)
        await ann.send(type="invite", room=den, user="bob", ref="i")
        await ann.wait_frame("invited", ref="i")
        await bob.join(den)
        await ann.say(den, "before the kick", "b")
        await bob.wait_frame("message", room=den, text="before the kick")

        redis_server.kill()
        for _ in range(100):
            if not (bus(a).connected or bus(b).connected):
                break
            await asyncio.sleep(0.05)
        await ann.send(type="kick", room=den, user="bob", ref="k")
        kick_id = (await ann.wait_frame("moderated", ref="k"))["id"]
        for n in range(3):
            await ann.say(den, f"after the kick {n}", f"a{n}")
            await ann.wait_frame("ack", ref=f"a{n}")
        redis_server.start()

        removed = await bob.wait_frame("removed", room=den, timeout=30)
        assert (removed["id"], removed["reason"], removed["by"]) == (
            kick_id,
            "kicked",
            "ann",
        )
        await ann.say(den, "once the bus is back", "z")
        await ann.wait_frame("ack", ref="z")
        await bob.send(type="join", room=den, ref="j")
        refused = await bob.wait_frame("error", ref="j")
        assert refused["code"] == "no_such_room"
        await asyncio.sleep(
            0.5
        )  # two heartbeats: anything still owed to bob would be here
        got = [f["id"] for f in bob.frames if f.get("room") == den and "id" in f]
        assert max(got) == kick_id and all(
            f["text"] == "before the kick" for f in bob.messages(den)
        ), bob.frames
    finally:
        await close_quietly(ann, bob)
