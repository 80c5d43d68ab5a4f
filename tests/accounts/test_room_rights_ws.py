"""Room rights in outside tokens on a real server (``--jwt-public-key``): tokens signed by the
test's private key with and without ``rawws_rooms``, joining and saying in allowed and refused
rooms, over the bearer header and over a ticket bought with the token."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import quote

import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from rawws.accounts.room_rights import CLAIM
from rawws.chat import wire as chat
from rawws.server.server import Server
from tests.conftest import StartServer
from tests.support.chat_client import ChatClient, connect_chat, ws_url
from tests.support.helpers import (
    TIMEOUT_S,
    claims,
    rsa_private_pem,
    rsa_public_pem,
    ticket,
)

RIGHTS = {"join": ["lobby", "team-*"], "publish": ["team-*"]}


@pytest.fixture
async def server(start_server: StartServer, tmp_path: Path) -> Server:
    key_file = tmp_path / "idp.pem"
    key_file.write_bytes(rsa_public_pem())
    return await start_server(
        jwt_public_key=str(key_file), jwt_public_algorithm="RS256"
    )


def outside_token(sub: str, rooms: object = None) -> str:
    payload = claims(time.time(), typ=None, sub=sub)
    if rooms is not None:
        payload[CLAIM] = rooms
    return jwt.encode(payload, rsa_private_pem(), algorithm="RS256")


async def by_ticket(server: Server, token: str, user: str) -> ChatClient:
    bought = await ticket(server.port, token)
    assert bought.status == 200, bought.body
    ws = await connect(
        f"{ws_url(server)}?ticket={quote(bought.json['ticket'], safe='')}",
        proxy=None,
        open_timeout=TIMEOUT_S,
        ping_interval=None,
    )
    client = ChatClient(ws, user)
    assert (await client.wait_frame("welcome"))["user"] == user
    return client


async def answer(client: ChatClient, **frame: object) -> dict:
    """The error or the answer to one frame with a ``ref``."""
    start = len(client.frames)
    await client.send(**frame)

    def found() -> dict | None:
        for f in client.frames[start:]:
            if f.get("ref") == frame["ref"] or (
                f["type"] == "joined" and f["room"] == frame.get("room")
            ):
                return f
        return None

    return await client.wait_until(found)


async def check_limited(client: ChatClient) -> None:
    joined = await answer(client, type="join", room="lobby", ref="j1")
    assert joined["type"] == "joined"
    said = await answer(client, type="say", room="lobby", text="hi", ref="s1")
    assert (said["type"], said["code"]) == ("error", chat.FORBIDDEN)
    typing = len(client.frames)
    await client.send(type="typing", room="lobby")
    refused = await client.wait_frame("error", start=typing)
    assert refused["code"] == chat.FORBIDDEN
    assert (await answer(client, type="join", room="team-a", ref="j2"))[
        "type"
    ] == "joined"
    assert (await answer(client, type="say", room="team-a", text="ok", ref="s2"))[
        "type"
    ] == "ack"
    # outside `join`: exactly what a private room never made answers
    outside = await answer(client, type="join", room="secret", ref="j3")
    never = await answer(client, type="join", room="never.abcdefgh", ref="j3")
    masked = [
        json.dumps(f).replace(name, "ROOM")
        for f, name in ((outside, "secret"), (never, "never.abcdefgh"))
    ]
    assert masked[0] == masked[1] and outside["code"] == chat.NO_SUCH_ROOM
    listed = await answer(client, type="rooms", ref="l")
    assert {r["room"] for r in listed["rooms"]} <= {"lobby", "team-a"}


async def test_an_outside_tokens_room_rights_hold_on_the_bearer_and_on_its_ticket(
    server: Server,
) -> None:
    free = await connect_chat(server, outside_token("hopper"), "ext:hopper")
    try:  # without the claim: bound only by the rooms' own doors
        for room in ("secret", "lobby"):
            assert (await free.join(room))["type"] == "joined"
            said = await answer(free, type="say", room=room, text="free", ref=room)
            assert said["type"] == "ack"
        limited = await connect_chat(
            server, outside_token("grace", RIGHTS), "ext:grace"
        )
        await check_limited(limited)
        await limited.close()
        ticketed = await by_ticket(server, outside_token("grace", RIGHTS), "ext:grace")
        await check_limited(ticketed)
        await ticketed.close()
        # what the limited users were refused was never stored: hopper saw only his own
        in_lobby = [m["text"] for m in free.messages("lobby")]
        assert "hi" not in in_lobby
    finally:
        await free.close()


@pytest.mark.parametrize(
    "rooms", [{"join": "lobby"}, {"join": ["Lobby"]}, {"admin": ["*"]}, []]
)
async def test_a_malformed_claim_is_401_before_any_upgrade_and_buys_no_ticket(
    server: Server, rooms: object
) -> None:
    token = outside_token("grace", rooms)
    with pytest.raises(InvalidStatus) as refused:
        await connect_chat(server, token, "ext:grace")
    assert refused.value.response.status_code == 401
    assert (await ticket(server.port, token)).status == 401
