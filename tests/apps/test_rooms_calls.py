"""The server API's room calls on a real server (SQLite and PostgreSQL): each call's answer, its
live effect on connected members (the frames a user's own invite, kick or a deletion would
give), and bad input refused with nothing changed."""

from __future__ import annotations

import re

from rawws.apps.keys import PUBLISH, READ, ROOMS
from rawws.chat.doors import direct_name
from rawws.server.server import Server
from tests.apps.api_keys import api, insert_key
from tests.conftest import StartServer
from tests.support.chat_client import close_quietly, connect_chat, new_users
from tests.support.helpers import Reply

PRIVATE_NAME = re.compile(r"den\.[a-z0-9]{8}")


async def listed(server: Server, key: str, **body: object) -> list[dict]:
    reply = await api(server, key, "rooms_list", body)
    assert reply.status == 200, reply.body
    return reply.json["rooms"]


def refused(reply: Reply, status: int, code: str) -> None:
    assert reply.status == status, reply.body
    assert reply.json["error"]["code"] == code, reply.body


async def test_rooms_create_list_and_delete_answer_as_the_spec_says(
    start_server: StartServer, db_url: str | None
) -> None:
    server = await start_server(db_url=db_url)
    await new_users(server, "ada", "bob")
    key = await insert_key(server, "backend")

    public = await api(server, key, "rooms_create", {"room": "lobby", "kind": "public"})
    assert public.json == {"room": "lobby", "kind": "public", "owner": None}
    feed = await api(
        server, key, "rooms_create", {"room": "news", "kind": "feed", "owner": "ADA"}
    )
    assert feed.json == {"room": "news", "kind": "feed", "owner": "ada"}
    private = await api(
        server,
        key,
        "rooms_create",
        {"room": "den", "kind": "private", "owner": "ada", "members": ["bob"]},
    )
    assert private.status == 200, private.body
    den = private.json["room"]
    assert PRIVATE_NAME.fullmatch(den) and private.json["owner"] == "ada"

    again = await api(server, key, "rooms_create", {"room": "lobby", "kind": "feed"})
    refused(again, 409, "room_exists")
    assert await listed(server, key) == [
        {"room": den, "kind": "private", "owner": "ada"},
        {"room": "lobby", "kind": "public", "owner": None},
        {"room": "news", "kind": "feed", "owner": "ada"},
    ]
    assert [r["room"] for r in await listed(server, key, prefix="n")] == ["news"]
    listing = await api(server, key, "rooms_list", {})
    assert listing.json["truncated"] is False

    history = await api(server, key, "history", {"room": den})
    assert [
        (m["type"], m["event"], m["user"], m["by"]) for m in history.json["messages"]
    ] == [("member", "invited", "bob", "backend")]
    gone = await api(server, key, "rooms_delete", {"room": den})
    assert gone.json == {"room": den, "deleted": True}
    refused(await api(server, key, "rooms_delete", {"room": den}), 404, "no_such_room")
    refused(await api(server, key, "history", {"room": den}), 404, "no_such_room")
    assert [r["room"] for r in await listed(server, key)] == ["lobby", "news"]


async def test_members_add_and_remove_reach_a_connected_member_as_invite_and_kick_do(
    start_server: StartServer, db_url: str | None
) -> None:
    server = await start_server(db_url=db_url)
    tokens = await new_users(server, "ada", "bob")
    key = await insert_key(server, "backend")
    made = await api(
        server, key, "rooms_create", {"room": "den", "kind": "private", "owner": "ada"}
    )
    den = made.json["room"]
    ada = await connect_chat(server, tokens["ada"], "ada")
    bob = await connect_chat(server, tokens["bob"], "bob")
    try:
        await ada.join(den)
        added = await api(server, key, "members_add", {"room": den, "user": "Bob"})
        assert added.json == {"room": den, "user": "bob", "role": "member"}
        await bob.wait_frame("invitation", room=den, by="backend")
        invited = await ada.wait_frame("member", room=den, event="invited")
        assert (invited["user"], invited["by"]) == ("bob", "backend")
        await bob.join(den)
        promoted = await api(
            server,
            key,
            "members_add",
            {"room": den, "user": "bob", "role": "moderator"},
        )
        assert promoted.json["role"] == "moderator"
        role = await ada.wait_frame("member", room=den, event="role")
        assert role["role"] == "moderator"

        removed = await api(server, key, "members_remove", {"room": den, "user": "bob"})
        assert removed.json == {"room": den, "user": "bob", "removed": True}
        frame = await bob.wait_frame("removed", room=den)
        assert (frame["reason"], frame["by"]) == ("kicked", "backend")
        await ada.wait_frame("member", room=den, event="kicked")
        refused(
            await api(server, key, "members_remove", {"room": den, "user": "bob"}),
            404,
            "not_member",
        )
        refused(
            await api(server, key, "members_remove", {"room": den, "user": "ada"}),
            409,
            "owner",
        )
        await api(server, key, "rooms_create", {"room": "lobby", "kind": "public"})
        refused(
            await api(server, key, "members_add", {"room": "lobby", "user": "bob"}),
            409,
            "public_room",
        )
    finally:
        await close_quietly(ada, bob)


async def test_rooms_delete_takes_every_connection_out_and_the_name_starts_again(
    start_server: StartServer, db_url: str | None
) -> None:
    server = await start_server(db_url=db_url)
    tokens = await new_users(server, "ada")
    key = await insert_key(server, "backend")
    ada = await connect_chat(server, tokens["ada"], "ada")
    try:
        await ada.join("lobby")
        for i in range(3):
            await ada.say("lobby", f"m{i}", ref=f"r{i}")
        await ada.wait_until(lambda: len(ada.message_ids("lobby")) == 3)
        gone = await api(server, key, "rooms_delete", {"room": "lobby"})
        assert gone.status == 200, gone.body
        frame = await ada.wait_frame("removed", room="lobby")
        assert frame == {
            "type": "removed",
            "room": "lobby",
            "reason": "deleted",
            "by": "backend",
        }
        start = len(ada.frames)
        joined = await ada.join("lobby")  # a new public room of that name
        assert joined["last_id"] == 1  # its own first join
        await ada.say("lobby", "fresh", ref="f")
        fresh = await ada.wait_frame("message", start=start, room="lobby", text="fresh")
        assert fresh["id"] == 2
    finally:
        await close_quietly(ada)


async def test_an_unreachable_room_and_a_direct_room_answer_as_a_missing_one(
    start_server: StartServer, db_url: str | None
) -> None:
    server = await start_server(db_url=db_url)
    tokens = await new_users(server, "ada", "bob")
    every = await insert_key(server, "backend")
    team = await insert_key(server, "team-app", (ROOMS, READ, PUBLISH), ("team-*",))
    calls = [
        ("history", {"room": "zz"}),
        ("presence", {"room": "zz"}),
        ("rooms_delete", {"room": "zz"}),
        ("members_add", {"room": "zz", "user": "bob"}),
        ("members_remove", {"room": "zz", "user": "bob"}),
    ]
    missing = [await api(server, every, c, b) for c, b in calls]  # no such room yet
    assert {r.status for r in missing} == {404}
    await api(server, every, "rooms_create", {"room": "zz", "kind": "private"})
    private = (await listed(server, every))[0]["room"]
    await api(server, every, "rooms_create", {"room": "zz", "kind": "feed"})
    for (call, body), before in zip(calls, missing, strict=True):
        after = await api(server, team, call, body)
        assert (after.status, after.body) == (before.status, before.body), call
    assert await listed(server, team) == []
    assert [r["room"] for r in await listed(server, every)] == ["zz", private]
    # a key for 'team-*' creates only there, and a private label it reaches must reach its name
    refused(
        await api(server, team, "rooms_create", {"room": "zz", "kind": "public"}),
        404,
        "no_such_room",
    )
    made = await api(server, team, "rooms_create", {"room": "team-a", "kind": "public"})
    assert made.status == 200

    direct = direct_name("ada", "bob")
    before = [await api(server, every, c, dict(b, room=direct)) for c, b in calls]
    ada = await connect_chat(server, tokens["ada"], "ada")
    try:
        await ada.send(type="dm", user="bob", ref="d")
        await ada.wait_frame("direct", room=direct)
        for (call, body), was in zip(calls, before, strict=True):
            now = await api(server, every, call, dict(body, room=direct))
            assert (now.status, now.body) == (was.status, was.body), call
        assert direct not in [r["room"] for r in await listed(server, every)]
    finally:
        await close_quietly(ada)


async def test_bad_input_is_a_4xx_and_changes_nothing(
    start_server: StartServer, db_url: str | None
) -> None:
    server = await start_server(db_url=db_url)
    await new_users(server, "ada")
    key = await insert_key(server, "backend")
    reader = await insert_key(server, "reader", (READ,))
    bad = [
        ({"room": "r1", "kind": "public", "colour": "red"}, 400, "bad_field"),
        ({"room": "r1", "kind": "square"}, 400, "bad_field"),
        ({"room": "r1", "kind": 3}, 400, "bad_field"),
        ({"room": "R 1", "kind": "public"}, 400, "bad_field"),
        ({"room": "r1", "kind": "private", "members": "ada"}, 400, "bad_field"),
        ({"room": "r1", "kind": "private", "members": [7]}, 400, "bad_field"),
        ({"room": "r1", "kind": "private", "members": ["ada"] * 101}, 400, "bad_field"),
        ({"room": "r1", "kind": "public", "members": ["ada"]}, 400, "bad_field"),
        (
            {"room": "r1", "kind": "private", "members": ["ada", "nobody"]},
            404,
            "no_such_user",
        ),
        ({"room": "r1", "kind": "feed", "owner": "nobody"}, 404, "no_such_user"),
        ({"room": "x" * 24, "kind": "private"}, 400, "bad_field"),
        ({"kind": "public"}, 400, "bad_field"),
    ]
    for body, status, code in bad:
        refused(await api(server, key, "rooms_create", body), status, code)
    refused(
        await api(server, reader, "rooms_create", {"room": "r1", "kind": "public"}),
        403,
        "scope",
    )
    assert await listed(server, key) == []
    await api(server, key, "rooms_create", {"room": "r1", "kind": "feed"})
    for call, body in [
        ("members_add", {"room": "r1", "user": "ada", "role": "owner"}),
        ("members_add", {"room": "r1", "user": "ada", "extra": 1}),
        ("history", {"room": "r1", "limit": 0}),
        ("history", {"room": "r1", "before": "1"}),
        ("rooms_list", {"prefix": 5}),
        ("users_disconnect", {"user": ["ada"]}),
    ]:
        refused(await api(server, key, call, body), 400, "bad_field")
    refused(
        await api(server, key, "members_add", {"room": "r1", "user": "nobody"}),
        404,
        "no_such_user",
    )
    history = await api(server, key, "history", {"room": "r1"})
    assert history.json == {"room": "r1", "messages": []}


async def test_presence_and_users_disconnect_answer_on_one_node(
    start_server: StartServer, db_url: str | None
) -> None:
    server = await start_server(db_url=db_url, presence_grace_s=0.0)
    tokens = await new_users(server, "ada", "bob")
    key = await insert_key(server, "backend")
    ada = await connect_chat(server, tokens["ada"], "ada")
    bob = await connect_chat(server, tokens["bob"], "bob")
    try:
        await ada.join("lobby")
        await bob.join("lobby")
        present = await api(server, key, "presence", {"room": "lobby"})
        assert present.json == {"room": "lobby", "users": ["ada", "bob"]}
        out = await api(server, key, "users_disconnect", {"user": "ADA"})
        assert out.json == {"user": "ADA", "connections": 1}
        await ada.wait_until(lambda: ada.done, what="ada's close")
        assert ada.close_code == 1000
        assert ada.ws.close_reason == "disconnected by the application"
        await bob.wait_frame("presence", room="lobby", user="ada", event="left")
        present = await api(server, key, "presence", {"room": "lobby"})
        assert present.json == {"room": "lobby", "users": ["bob"]}
    finally:
        await close_quietly(ada, bob)
