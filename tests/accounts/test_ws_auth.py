"""The authenticated `/ws` endpoint on a real server: refusals before any 101, the three carriers, tickets,
Origin, and the close with 1008 when the token expires.

RFC 6455 §4.2.2: a server that will not accept a handshake answers with an
HTTP error status; it never sends a 101 and then a close.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from urllib.parse import quote

import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from rawws.accounts.tokens import TICKET
from rawws.server.server import Server
from testkit import masked_frame
from tests.conftest import StartServer
from tests.support.helpers import (
    SECRET_TEXT,
    TIMEOUT_S,
    Attack,
    attack_corpus,
    close_code,
    http,
    open_raw,
    read_frame,
    read_http_head,
    read_until_eof,
    registered_token,
    rsa_public_pem,
    ticket,
    upgrade_request,
)

TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA
EXPIRY_WAIT_S = 15.0  # bound on waiting for the expiry close (the token lives ~1 s)

KiB = 1024


def host(server: Server) -> str:
    return f"127.0.0.1:{server.port}"


async def try_upgrade(
    server: Server, target: str = "/ws", extra: str = ""
) -> tuple[int, dict[str, str], bytes, tuple]:
    """Send an upgrade request; the status, headers, body and (on a 101) the open (reader, writer)."""
    reader, writer = await open_raw(server.port)
    writer.write(upgrade_request(target, host=host(server), extra=extra))
    status, headers, body = await read_http_head(reader, TIMEOUT_S)
    if status != 101:
        writer.close()
        return status, headers, body, ()
    return status, headers, body, (reader, writer)


async def welcome_of(reader) -> dict:
    opcode, payload, fin = await read_frame(reader, TIMEOUT_S)
    assert (opcode, fin) == (TEXT, True)
    message = json.loads(payload)
    assert message["type"] == "welcome"
    return message


async def close_politely(reader, writer) -> None:
    writer.write(masked_frame(CLOSE, b"\x03\xe8"))
    while True:
        opcode, _, _ = await read_frame(reader, TIMEOUT_S)
        if opcode == CLOSE:
            break
    writer.close()


def assert_refused(
    status: int, headers: dict[str, str], body: bytes, expected: int, secret: str = ""
) -> None:
    assert status == expected, body
    assert "sec-websocket-accept" not in headers
    assert json.loads(body)["error"]["status"] == expected
    if expected == 401:
        assert headers["www-authenticate"].startswith("Bearer")  # RFC 6750 §3
    if secret:
        assert secret not in body.decode("latin-1")


# -- the attack corpus is refused before any upgrade -------------------------------

CORPUS_IDS = [
    attack.name
    for attack in attack_corpus(SECRET_TEXT.encode(), rsa_public_pem(), time.time())
]


@pytest.fixture
async def corpus_server(start_server: StartServer, tmp_path: Path) -> Server:
    """HS256 with the corpus's secret and an RS256 public key (so algorithm confusion has a target).

    The request limits are raised so that the over-8-KiB token reaches the
    token check rather than earning a 414 first.
    """
    public_key = tmp_path / "idp.pem"
    public_key.write_bytes(rsa_public_pem())
    return await start_server(
        jwt_secret=SECRET_TEXT,
        jwt_public_key=str(public_key),
        jwt_public_algorithm="RS256",
        max_target_bytes=64 * KiB,
        max_header_bytes=128 * KiB,
    )


@pytest.mark.parametrize("name", CORPUS_IDS)
async def test_corpus_token_gets_401_before_any_upgrade(
    corpus_server: Server, name: str
) -> None:
    attack: Attack = {
        a.name: a
        for a in attack_corpus(SECRET_TEXT.encode(), rsa_public_pem(), time.time())
    }[name]
    parameter = "ticket" if attack.kind == TICKET else "token"
    status, headers, body, _ = await try_upgrade(
        corpus_server, f"/ws?{parameter}={quote(attack.token, safe='')}"
    )
    assert_refused(status, headers, body, 401, attack.token)


async def test_the_corpus_server_accepts_a_proper_token(corpus_server: Server) -> None:
    """The corpus is refused for what is wrong with each token, not because the server refuses everything."""
    token = await registered_token(corpus_server.port, "Ada")
    status, _, _, (reader, writer) = await try_upgrade(
        corpus_server, f"/ws?token={token}"
    )
    assert status == 101
    assert (await welcome_of(reader))["user"] == "Ada"
    await close_politely(reader, writer)


@pytest.mark.parametrize(
    ("target", "extra"),
    [
        ("/ws", ""),
        ("/ws?token=", ""),
        ("/ws?ticket=", ""),
        ("/ws", "Sec-WebSocket-Protocol: rawws.v1\r\n"),
        ("/ws", "Sec-WebSocket-Protocol: rawws.v1, bearer.\r\n"),
        ("/ws", "Authorization: Basic YWRhOnNlc2FtZQ==\r\n"),
        ("/ws", "Authorization: Bearer\r\n"),
    ],
    ids=[
        "nothing",
        "empty-token",
        "empty-ticket",
        "subprotocol-only",
        "empty-bearer-subprotocol",
        "basic-auth",
        "bearer-nothing",
    ],
)
async def test_no_credential_is_401(
    start_server: StartServer, target: str, extra: str
) -> None:
    server = await start_server()
    status, headers, body, _ = await try_upgrade(server, target, extra)
    assert_refused(status, headers, body, 401)


async def test_refusal_keeps_the_connection_usable_for_http(
    start_server: StartServer,
) -> None:
    """A 401 is an ordinary HTTP answer (RFC 9110 §15.5.2): the same connection can carry the next request."""
    server = await start_server()
    reader, writer = await open_raw(server.port)
    writer.write(upgrade_request("/ws", host=host(server)))
    assert (await read_http_head(reader, TIMEOUT_S))[0] == 401
    writer.write(f"GET /healthz HTTP/1.1\r\nHost: {host(server)}\r\n\r\n".encode())
    assert (await read_http_head(reader, TIMEOUT_S))[0] == 200
    writer.close()


# -- the three carriers ------------------------------------------------------------


@pytest.mark.parametrize("carrier", ["query", "subprotocol", "authorization"])
async def test_valid_token_on_each_carrier_opens_the_socket(
    start_server: StartServer, carrier: str
) -> None:
    server = await start_server()
    token = await registered_token(server.port, "Ada")
    target, extra = {
        "query": (f"/ws?token={token}", ""),
        # Browsers cannot set headers: the token rides in an offered subprotocol beside the real one.
        "subprotocol": ("/ws", f"Sec-WebSocket-Protocol: rawws.v1, bearer.{token}\r\n"),
        "authorization": ("/ws", f"Authorization: Bearer {token}\r\n"),  # RFC 6750 §2.1
    }[carrier]
    reader, writer = await open_raw(server.port)
    writer.write(upgrade_request(target, host=host(server), extra=extra))
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert token.encode() not in head  # never echoed back, in any header
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (
            line.partition(":")
            for line in head.decode("latin-1").split("\r\n")[1:]
            if line
        )
    }
    if carrier == "subprotocol":
        assert (
            headers["sec-websocket-protocol"] == "rawws.v1"
        )  # RFC 6455 §4.2.2: one of those offered
    else:
        assert "sec-websocket-protocol" not in headers  # none was offered
    welcome = await welcome_of(reader)
    assert welcome["user"] == "Ada"
    await close_politely(reader, writer)


async def test_websockets_client_with_bearer_subprotocol(
    start_server: StartServer,
) -> None:
    """An independent client (the `websockets` library) gets rawws.v1 back and the welcome."""
    server = await start_server()
    token = await registered_token(server.port, "Grace")
    async with connect(
        f"ws://{host(server)}/ws",
        subprotocols=["rawws.v1", f"bearer.{token}"],  # type: ignore[list-item]
        proxy=None,
        open_timeout=TIMEOUT_S,
        close_timeout=TIMEOUT_S,
    ) as ws:
        assert ws.subprotocol == "rawws.v1"
        welcome = json.loads(await ws.recv())
        assert (welcome["type"], welcome["user"], welcome["rooms"]) == (
            "welcome",
            "Grace",
            ["lobby"],
        )


async def test_websockets_client_sees_401_for_a_bad_token(
    start_server: StartServer,
) -> None:
    server = await start_server()
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            f"ws://{host(server)}/ws?token=not.a.token",
            proxy=None,
            open_timeout=TIMEOUT_S,
        ):
            pass
    assert refused.value.response.status_code == 401


# -- tickets ---------------------------------------------------------------------


async def test_ticket_opens_one_connection_only(start_server: StartServer) -> None:
    server = await start_server()
    token = await registered_token(server.port, "Ada")
    issued = (await ticket(server.port, token)).json["ticket"]

    status, _, _, (reader, writer) = await try_upgrade(server, f"/ws?ticket={issued}")
    assert status == 101
    assert (await welcome_of(reader))["user"] == "Ada"
    await close_politely(reader, writer)

    status, headers, body, _ = await try_upgrade(server, f"/ws?ticket={issued}")
    assert_refused(status, headers, body, 401, issued)
    assert "already used" in json.loads(body)["error"]["message"]


async def test_ticket_is_not_spent_by_a_failed_handshake(
    start_server: StartServer,
) -> None:
    """A request the handshake refuses anyway (here: bad version, 426) does not burn the ticket."""
    server = await start_server()
    token = await registered_token(server.port, "Ada")
    issued = (await ticket(server.port, token)).json["ticket"]
    status, _, _, _ = await try_upgrade(
        server, f"/ws?ticket={issued}", "Sec-WebSocket-Version: 8\r\n"
    )
    assert status == 426
    status, _, _, (reader, writer) = await try_upgrade(server, f"/ws?ticket={issued}")
    assert status == 101
    await close_politely(reader, writer)


async def test_tickets_and_access_tokens_keep_to_their_parameters(
    start_server: StartServer,
) -> None:
    server = await start_server()
    token = await registered_token(server.port, "Ada")
    issued = (await ticket(server.port, token)).json["ticket"]
    for target in (f"/ws?ticket={token}", f"/ws?token={issued}"):
        status, headers, body, _ = await try_upgrade(server, target)
        assert_refused(status, headers, body, 401)
    # Neither refusal spent the ticket.
    status, _, _, (reader, writer) = await try_upgrade(server, f"/ws?ticket={issued}")
    assert status == 101
    await close_politely(reader, writer)


# -- Origin (RFC 6455 §10.2) ---------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "null", "https://chat.example.evil", "http://127.0.0.1"],
)
async def test_origin_not_allowed_is_403_even_with_a_valid_token(
    start_server: StartServer, origin: str
) -> None:
    server = await start_server(allowed_origins=("https://chat.example",))
    token = await registered_token(server.port, "Ada")
    status, headers, body, _ = await try_upgrade(
        server, f"/ws?token={token}", f"Origin: {origin}\r\n"
    )
    assert_refused(status, headers, body, 403, token)


@pytest.mark.parametrize("which", ["own", "allow-listed", "absent"])
async def test_allowed_origins_open_the_socket(
    start_server: StartServer, which: str
) -> None:
    server = await start_server(allowed_origins=("https://chat.example",))
    token = await registered_token(server.port, "Ada")
    origin = {
        "own": f"Origin: http://{host(server)}\r\n",  # scheme://Host, as a browser on this page sends it
        "allow-listed": "Origin: https://chat.example\r\n",
        "absent": "",  # non-browser clients
    }
    status, _, _, (reader, writer) = await try_upgrade(
        server, f"/ws?token={token}", origin[which]
    )
    assert status == 101
    assert (await welcome_of(reader))["user"] == "Ada"
    await close_politely(reader, writer)


# -- expiry ----------------------------------------------------------------------


async def test_connection_is_closed_with_1008_when_its_token_expires(
    start_server: StartServer,
) -> None:
    """README "Accounts and tokens": the token's ``exp`` ends the connection, with 1008 (RFC 6455 §7.4.1: policy violation)."""
    server = await start_server(access_ttl_s=1)
    token = await registered_token(server.port, "Ada")
    status, _, _, (reader, writer) = await try_upgrade(server, f"/ws?token={token}")
    assert status == 101
    assert (await welcome_of(reader))["user"] == "Ada"

    while True:  # whatever the chat sends first, a close must come within the bound
        opcode, payload, _ = await read_frame(reader, EXPIRY_WAIT_S)
        if opcode == CLOSE:
            break
    assert close_code(payload) == 1008
    assert payload[2:].decode("utf-8") == "token expired"
    writer.write(
        masked_frame(CLOSE, payload[:2])
    )  # finish the closing handshake (RFC 6455 §5.5.1)
    rest, closed = await read_until_eof(reader, TIMEOUT_S)
    assert closed and rest == b""  # and the server closes TCP (RFC 6455 §7.1.1)
    writer.close()


async def test_expiry_closes_every_carrier(start_server: StartServer) -> None:
    server = await start_server(access_ttl_s=1)
    token = await registered_token(server.port, "Ada")
    issued = (await ticket(server.port, token)).json["ticket"]
    connections = []
    for target, extra in (
        ("/ws", f"Sec-WebSocket-Protocol: rawws.v1, bearer.{token}\r\n"),
        ("/ws", f"Authorization: Bearer {token}\r\n"),
        (
            f"/ws?ticket={issued}",
            "",
        ),  # a ticket connection lives as long as the ticket says
    ):
        status, _, _, opened = await try_upgrade(server, target, extra)
        assert status == 101
        connections.append(opened)
    for reader, writer in connections:
        await welcome_of(reader)
        while True:
            opcode, payload, _ = await read_frame(reader, EXPIRY_WAIT_S)
            if opcode == CLOSE:
                break
        assert close_code(payload) == 1008
        writer.close()


async def test_a_ticket_connection_outlives_the_ticket(
    start_server: StartServer,
) -> None:
    """A ticket is for opening one connection within seconds; the connection then lasts as long as the access
    token that bought the ticket, not 30 s (README: "valid 30 s, accepted once")."""
    server = await start_server(ticket_ttl_s=1)  # access tokens: the default 15 minutes
    token = await registered_token(server.port, "Ada")
    issued = (await ticket(server.port, token)).json["ticket"]
    ticket_exp = jwt.decode(issued, options={"verify_signature": False})["exp"]
    status, _, _, (reader, writer) = await try_upgrade(server, f"/ws?ticket={issued}")
    assert status == 101
    await welcome_of(reader)

    await asyncio.sleep(
        max(0.0, ticket_exp + 1 - time.time())
    )  # bounded: the ticket lives about 1 s
    writer.write(masked_frame(PING, b"still there?"))
    while True:
        opcode, payload, _ = await read_frame(reader, TIMEOUT_S)
        assert opcode != CLOSE, (
            f"closed with {close_code(payload)} when the ticket expired"
        )
        if opcode == PONG:
            assert payload == b"still there?"
            break
    await close_politely(reader, writer)


async def test_a_ticket_never_outlives_the_access_token_that_bought_it(
    start_server: StartServer,
) -> None:
    server = await start_server(access_ttl_s=1)  # tickets: the default 30 s
    token = await registered_token(server.port, "Ada")
    issued = (await ticket(server.port, token)).json["ticket"]
    claims = jwt.decode(issued, options={"verify_signature": False})
    access_exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert claims["exp"] <= access_exp
    status, _, _, (reader, writer) = await try_upgrade(server, f"/ws?ticket={issued}")
    assert status == 101
    await welcome_of(reader)
    while True:
        opcode, payload, _ = await read_frame(reader, EXPIRY_WAIT_S)
        if opcode == CLOSE:
            break
    assert close_code(payload) == 1008
    writer.close()


async def test_healthz_still_answers_without_credentials(
    start_server: StartServer,
) -> None:
    server = await start_server()
    assert (await http(server.port, "GET", "/healthz")).status == 200
