"""``POST /send`` to a node that does not hold the session: forwarded over the bus, run there only
for the session's own user (two in-process nodes on PostgreSQL and a real redis-server)."""

from __future__ import annotations

from rawws.server.server import Server
from tests.apps.test_rooms_cluster import two_nodes
from tests.conftest import StartServer
from tests.support.helpers import http, registered_token
from tests.support.redis_server import RedisServer
from tests.support.transport_clients import SseSteps


async def post(server: Server, token: str, session: str, *commands: dict) -> dict:
    reply = await http(
        server.port,
        "POST",
        "/send",
        {"session": session, "commands": list(commands)},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert reply.status == 202, reply.body
    return reply.json


async def test_commands_posted_to_the_other_node_reach_the_session_and_only_its_users(
    start_server: StartServer, postgres_url: str, redis_server: RedisServer
) -> None:
    a, b = await two_nodes(start_server, postgres_url, redis_server)
    ann = await registered_token(a.port, "ann")
    bob = await registered_token(a.port, "bob")
    stream = await SseSteps.open(a.port, ann)
    session = (await stream.next())[0]["session"]
    join = {"type": "join", "room": "lobby", "ref": "j"}
    assert await post(b, ann, session, join) == {"accepted": 1, "forwarded": True}
    await stream.until("joined", room="lobby")
    forged = {"type": "say", "room": "lobby", "text": "forged", "ref": "f"}
    assert (await post(b, bob, session, forged))[
        "forwarded"
    ]  # b cannot tell: a drops it
    said = {"type": "say", "room": "lobby", "text": "mine", "ref": "m"}
    await post(b, ann, session, said)
    seen = []
    while not any(f.get("ref") == "m" for f in seen):
        seen.append((await stream.next())[0])
    assert not [f for f in seen if f.get("text") == "forged" or f.get("ref") == "f"]
    message, _ = await stream.until("message", text="mine")
    assert message["user"] == "ann"
    local = await http(
        a.port,
        "POST",
        "/send",
        {"session": session, "commands": [forged]},
        headers={"Authorization": f"Bearer {bob}"},
    )
    assert local.status == 404  # on its own node, another user's session is not found
    await stream.close()


async def test_a_lone_node_does_not_forward(start_server: StartServer) -> None:
    server = await start_server()
    token = await registered_token(server.port, "ann")
    reply = await http(
        server.port,
        "POST",
        "/send",
        {
            "session": "0a1b2c3d.elsewhere",
            "commands": [{"type": "who", "room": "lobby"}],
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert reply.status == 404
