"""Streamed messages across nodes: two real servers on one PostgreSQL and one real ``redis-server``.

The application talks to node A only; a member on node B gets every chunk (through the
bus), a member who joins on B mid-stream gets the text so far then the rest, and both
get the finished message once.
"""

from __future__ import annotations

from rawws.server.server import Server
from tests.apps.key_rows import api, live_key
from tests.apps.test_streams import (
    ROOM,
    append,
    finals,
    open_stream,
    streamed,
    text_seen,
)
from tests.conftest import StartServer
from tests.support.chat_client import close_quietly, connect_chat, new_user
from tests.support.redis_server import RedisServer

SECRET = "streams-cluster-secret-" + "x" * 32


async def start_nodes(
    start_server: StartServer, postgres_url: str, redis_server: RedisServer
) -> tuple[Server, Server]:
    settings: dict[str, object] = {
        "db_url": postgres_url,
        "bus_url": redis_server.url,
        "jwt_secret": SECRET,
        "bus_heartbeat_s": 0.2,
    }
    return await start_server(**settings), await start_server(**settings)


async def test_a_member_on_the_other_node_gets_the_chunks_and_the_message(
    start_server: StartServer, postgres_url: str, redis_server: RedisServer
) -> None:
    a, b = await start_nodes(start_server, postgres_url, redis_server)
    key = await live_key(a, "oracle")
    ann_token = await new_user(a.port, "ann")
    bob_token = await new_user(a.port, "bob")
    ann = await connect_chat(b, ann_token, "ann")
    bob = await connect_chat(b, bob_token, "bob")
    try:
        await ann.join(ROOM)
        stream = await open_stream(a, key)
        for chunk in ("Once ", "upon ", "a "):
            await append(a, key, stream, chunk)
        await ann.wait_frame("stream", stream=stream, seq=3)
        await bob.join(ROOM)
        whole = await bob.wait_frame("stream", stream=stream)
        assert (whole["whole"], whole["seq"], whole["text"]) == (
            True,
            3,
            "Once upon a ",
        )
        await append(a, key, stream, "time.")
        reply = await api(a.port, key, "stream_finish", stream=stream)
        assert reply.status == 200
        for client in (ann, bob):
            final = await client.wait_frame("message", stream=stream)
            assert final["id"] == reply.json["id"]
            assert final["text"] == "Once upon a time." and final["app"] is True
            frames = streamed(client, stream)
            assert text_seen(frames) == final["text"]
            assert client.frames.index(final) > client.frames.index(frames[-1])
        assert [f["seq"] for f in streamed(ann, stream)] == [1, 2, 3, 4]
        assert [f["seq"] for f in streamed(bob, stream)] == [3, 4]
        await bob.send(type="history", room=ROOM)
        history = await bob.wait_frame("history", room=ROOM)
        assert [m.get("stream") for m in history["messages"]].count(stream) == 1
        assert len(finals(ann, stream)) == len(finals(bob, stream)) == 1
    finally:
        await close_quietly(ann, bob)
