"""A kick across nodes while the bus is down: two real `rawws serve` processes on one
PostgreSQL and a real ``redis-server``, which is killed before the kick and started again
after it.

Node A stores the kick (and messages after it) while Redis is down; node B, where the
kicked user is connected, hears nothing. When Redis returns, B catches up from the
store: the kick comes first in the room's order, so the kicked user is told
(``removed``, with the kick's id) and receives nothing stored after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.chat_client import close_quietly, connect_chat, login, new_user
from tests.support.nodes import StartNode, node_starter
from tests.support.redis_server import RedisServer

SECRET = "moderation-cluster-secret-" + "m" * 32
HEARTBEAT_S = "0.2"  # heads: how a node finds what the bus did not bring


@pytest.fixture
async def nodes(
    tmp_path: Path, postgres_url: str, redis_server: RedisServer
) -> AsyncIterator[StartNode]:
    env = {
        "RAWWS_DB_URL": postgres_url,
        "RAWWS_BUS_URL": redis_server.url,
        "RAWWS_JWT_SECRET": SECRET,
        "RAWWS_BUS_HEARTBEAT_S": HEARTBEAT_S,
    }
    async with node_starter(tmp_path, env) as start:
        yield start


async def test_a_kick_made_while_redis_is_down_holds_on_the_other_node_when_it_returns(
    nodes: StartNode, redis_server: RedisServer
) -> None:
    a, b = await nodes(), await nodes()
    for name in ("ann", "bob"):
        await new_user(a.port, name)
    ann = await connect_chat(a.port, await login(a.port, "ann"), "ann")
    bob = await connect_chat(b.port, await login(b.port, "bob"), "bob")
    try:
        await ann.send(type="create", room="den", kind="private", ref="c")
        den = (await ann.wait_frame("created", ref="c"))["room"]
        await ann.join(den)
        await ann.send(type="invite", room=den, user="bob", ref="i")
        await ann.wait_frame("invited", ref="i")
        await bob.join(den)
        await ann.say(den, "before the kick", "b")
        await bob.wait_frame("message", room=den, text="before the kick")

        redis_server.kill()  # nothing A publishes from here reaches B
        await ann.send(type="kick", room=den, user="bob", ref="k")
        kick_id = (await ann.wait_frame("moderated", ref="k"))["id"]
        after = []
        for n in range(3):
            await ann.say(den, f"after the kick {n}", f"a{n}")
            after.append((await ann.wait_frame("ack", ref=f"a{n}"))["id"])
        assert after == [kick_id + 1, kick_id + 2, kick_id + 3]
        redis_server.start()

        removed = await bob.wait_frame("removed", room=den, timeout=30)
        assert (removed["id"], removed["reason"], removed["by"]) == (
            kick_id,
            "kicked",
            "ann",
        )
        await ann.say(den, "once the bus is back", "z")
        last = (await ann.wait_frame("ack", ref="z"))["id"]
        await bob.send(type="join", room=den, ref="j")
        refused = await bob.wait_frame("error", ref="j")
        assert refused["code"] == "no_such_room"
        # Bob's own frames are the proof: had anything stored after the kick been owed to
        # him, B would have sent it before `removed` (the room's order) or with the
        # message `last` (which a heartbeat of A's also names).
        await ann.wait_frame("message", room=den, id=last)
        await asyncio.sleep(float(HEARTBEAT_S) * 3)
        got = [f["id"] for f in bob.frames if f.get("room") == den and "id" in f]
        assert max(got) == kick_id, bob.frames
        assert [m["text"] for m in bob.messages(den)] == ["before the kick"]
    finally:
        await close_quietly(ann, bob)
