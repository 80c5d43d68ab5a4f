"""Every call of /api/v1, made once for real, answers what the OpenAPI document says it answers:
the document is checked against the server, not only against the OpenAPI schema."""

from __future__ import annotations

import jsonschema

from rawws.apps.keys import SCOPES
from rawws.apps.openapi import CALLS
from tests.apps.api_keys import api, insert_key
from tests.conftest import StartServer
from tests.support.chat_client import close_quietly, connect_chat, new_users


async def test_every_call_answers_as_its_schema_says(start_server: StartServer) -> None:
    server = await start_server()
    tokens = await new_users(server, "ada", "bob")
    key = await insert_key(server, "backend", SCOPES)
    ada = await connect_chat(server, tokens["ada"], "ada")
    made: dict[str, dict] = {}

    async def made_call(name: str, body: dict) -> dict:
        reply = await api(server, key, name, body)
        assert reply.status == 200, (name, reply.body)
        jsonschema.validate(reply.json, CALLS[name][3])
        made[name] = reply.json
        return reply.json

    await made_call("rooms_create", {"room": "lobby", "kind": "public"})
    await ada.join("lobby")
    den = (
        await made_call(
            "rooms_create", {"room": "den", "kind": "private", "owner": "ada"}
        )
    )["room"]
    await made_call("rooms_list", {})
    await made_call("members_add", {"room": den, "user": "bob"})
    await made_call("members_remove", {"room": den, "user": "bob"})
    await made_call("publish", {"room": "lobby", "text": "hi", "idempotency_key": "k1"})
    await made_call("publish_batch", {"messages": [{"room": "lobby", "text": "a"}]})
    stream = (await made_call("stream_open", {"room": "lobby"}))["stream"]
    await made_call("stream_append", {"stream": stream, "text": "to"})
    await made_call("stream_finish", {"stream": stream})
    assert (await made_call("presence", {"room": "lobby"}))["users"] == ["ada"]
    await made_call("history", {"room": "lobby", "limit": 10})
    await made_call("users_disconnect", {"user": "ada"})
    await made_call("rooms_delete", {"room": den})
    assert set(made) == set(CALLS)
    await close_quietly(ada)
