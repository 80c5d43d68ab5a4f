"""A publish is stored once however often it is retried: two real `rawws serve` nodes on one
PostgreSQL and one Redis, an API key made with `rawws api-key create`, members over WebSocket
on both nodes.

The hard case is the node that dies between storing and answering. A small TCP proxy
stands between the client and node A: it forwards the request and, at the first byte
of A's answer, drops the client's connection without forwarding it while the test
SIGKILLs A. The message is stored; the client never heard so. The same publish (same
``idempotency_key``, same body) is then retried, 100 attempts in all, alternating between
B and A (dead, then started again on its port). What must hold: one row in the store,
one id in every answer that came (``duplicate`` in all but at most the first), and that
id delivered exactly once to every member, including those who were on A and came back
with ``since``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from rawws.api import ApiClient, ApiError, ApiUnreachable, Published
from testkit import free_port
from tests.api.support import app_messages, create_api_key, idempotency_records
from tests.support.chat_client import (
    ChatClient,
    close_quietly,
    connect_chat,
    login,
    new_user,
)
from tests.support.nodes import Node, start_node
from tests.support.redis_server import RedisServer

ROOM = "quotes"
APP = "ticker"
ATTEMPTS = 100
HEARTBEAT_S = 0.25
SETTLE_S = HEARTBEAT_S * 8  # long enough for a second delivery, had there been one
WAIT_S = 30.0
CALL_TIMEOUT_S = 10.0


@pytest.fixture
def env(postgres_url: str, redis_server: RedisServer) -> dict[str, str]:
    return {
        "RAWWS_DB_URL": postgres_url,
        "RAWWS_BUS_URL": redis_server.url,
        "RAWWS_JWT_SECRET": "exactly-once-test-secret-" + "e" * 32,
        "RAWWS_BUS_HEARTBEAT_S": str(HEARTBEAT_S),
        "RAWWS_PRESENCE_TTL_S": "2",
        "RAWWS_REGISTRATIONS_PER_HOUR_PER_ADDRESS": "100000",
        "RAWWS_WEBSOCKETS_PER_ADDRESS": "100000",
    }


@pytest.fixture
async def nodes(
    tmp_path: Path, env: dict[str, str]
) -> AsyncIterator[Callable[..., Awaitable[Node]]]:
    """Start a node in ``tmp_path/<name>`` (on ``port`` if given: a restart); all stopped at the end."""
    started: list[Node] = []

    async def start(name: str, port: int | None = None) -> Node:
        node = await start_node(tmp_path / name, port=port, env=env)
        started.append(node)
        return node

    yield start  # type: ignore[misc]
    for node in started:
        await node.stop()


class TrapProxy:
    """Forwards TCP to ``port``; while armed, at the first byte of the answer it calls
    ``on_answer`` (the test's SIGKILL) and drops the client without forwarding a byte."""

    def __init__(self, port: int, on_answer: Callable[[], None]) -> None:
        self.port = port
        self.on_answer = on_answer
        self.armed = True
        self.sprung = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            upstream_reader, upstream = await asyncio.open_connection(
                "127.0.0.1", self.port
            )
        except (
            OSError
        ):  # the node is dead: so is the connection, as a balancer would have it
            writer.transport.abort()
            return
        up = asyncio.create_task(self._pipe(reader, upstream))
        self.tasks.add(up)
        try:
            while data := await upstream_reader.read(65536):
                if self.armed:
                    self.armed = False
                    self.on_answer()
                    writer.transport.abort()
                    self.sprung.set()
                    return
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            up.cancel()
            upstream.transport.abort()
            writer.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()


async def member(port: int, name: str, *, new: bool) -> tuple[ChatClient, int]:
    """``name`` connected to the node on ``port`` and in ROOM: the client and the last id before it."""
    token = await new_user(port, name) if new else await login(port, name)
    client = await connect_chat(port, token, name)
    joined = await client.join(ROOM)
    return client, int(joined["last_id"])


async def rejoin(port: int, name: str, seen: int) -> ChatClient:
    """``name`` back on the node on ``port``, resuming ROOM after id ``seen``."""
    client = await connect_chat(port, await login(port, name), name)
    await client.join(ROOM, since=seen)
    return client


def last_seen(client: ChatClient, joined_last: int) -> int:
    return max([joined_last, *client.entry_ids(ROOM)])


def copies(clients: list[ChatClient], message_id: int) -> list[dict[str, object]]:
    """Every ``message`` frame of ``message_id`` the clients got, on every connection."""
    return [f for c in clients for f in c.messages(ROOM) if f["id"] == message_id]


async def assert_each_got_it_once(
    members: dict[str, list[ChatClient]], message_id: int, text: str
) -> None:
    for name, clients in members.items():
        await clients[-1].wait_until(
            lambda cs=clients: copies(cs, message_id),
            timeout=WAIT_S,
            what=f"{name}: message {message_id}",
        )
    await asyncio.sleep(SETTLE_S)
    for name, clients in members.items():
        got = copies(clients, message_id)
        assert len(got) == 1, (name, got)
        assert (got[0]["text"], got[0]["user"], got[0]["app"]) == (text, APP, True)


async def attempt(api: ApiClient, text: str, key: str) -> Published | Exception:
    try:
        return await api.publish(ROOM, text, key, timeout=CALL_TIMEOUT_S)
    except (ApiUnreachable, ApiError) as error:
        if isinstance(error, ApiError) and error.status != 503:
            raise
        return error


async def test_a_publish_stored_by_a_node_killed_before_it_answered_is_stored_once(
    nodes, env: dict[str, str], postgres_url: str, tmp_path: Path
) -> None:
    a_port = free_port()
    a, b = await nodes("a", a_port), await nodes("b")
    key = await create_api_key(
        APP, "--scope", "publish", "--per-second", "1000", "--burst", "1000", env=env
    )
    on_a = {"ann": await member(a.port, "ann", new=True)}
    on_a["abe"] = await member(a.port, "abe", new=True)
    on_b = {"bob": await member(b.port, "bob", new=True)}
    on_b["bea"] = await member(b.port, "bea", new=True)
    members = {name: [client] for name, (client, _) in {**on_a, **on_b}.items()}
    proxy = TrapProxy(a_port, a.kill)
    via_a = ApiClient(f"http://127.0.0.1:{await proxy.start()}", key)
    via_b = ApiClient(f"http://127.0.0.1:{b.port}", key)
    text, idempotency_key = "ACME 101.25 +0.12", "quote-acme-0001"
    try:
        first = await attempt(via_a, text, idempotency_key)
        assert isinstance(first, ApiUnreachable), first  # stored, never answered
        assert proxy.sprung.is_set()
        await a.process.wait()
        assert await app_messages(postgres_url, ROOM, APP) == 1

        # ann comes back on B at once; abe on A once it is started again on its port
        members["ann"].append(await rejoin(b.port, "ann", last_seen(*on_a["ann"])))
        answers: list[Published | Exception] = [first]
        for n in range(1, ATTEMPTS):
            if n == ATTEMPTS // 2:
                a = await nodes("a", a_port)
                seen = last_seen(*on_a["abe"])
                members["abe"].append(await rejoin(a.port, "abe", seen))
            api = via_b if n % 2 else via_a
            answers.append(await attempt(api, text, idempotency_key))

        stored = [answer for answer in answers if isinstance(answer, Published)]
        assert len(stored) >= ATTEMPTS // 2  # B answers every time, A once back
        assert {(p.room, p.id) for p in stored} == {(ROOM, stored[0].id)}
        assert all(p.duplicate for p in stored[1:])
        assert await app_messages(postgres_url, ROOM, APP) == 1
        assert await idempotency_records(postgres_url) == 1
        await assert_each_got_it_once(members, stored[0].id, text)
        logs = [path.read_text(errors="replace") for path in tmp_path.rglob("*.log")]
        assert len(logs) >= 3  # A, A again, B: none of them wrote the key or its secret
        secret = key.rsplit("_", 1)[1]
        assert not [text for text in logs if secret in text]
    finally:
        await via_a.close()
        await via_b.close()
        await proxy.close()
        await close_quietly(*(c for clients in members.values() for c in clients))


async def test_a_hundred_identical_publishes_at_once_over_two_nodes_store_one_message(
    nodes, env: dict[str, str], postgres_url: str
) -> None:
    a, b = await nodes("a"), await nodes("b")
    key = await create_api_key(
        APP, "--scope", "publish", "--per-second", "1000", "--burst", "1000", env=env
    )
    members = {
        "ann": [(await member(a.port, "ann", new=True))[0]],
        "bob": [(await member(b.port, "bob", new=True))[0]],
    }
    text, idempotency_key = "GLOBEX 47.50 -0.03", "quote-globex-0001"
    async with (
        ApiClient(f"http://127.0.0.1:{a.port}", key, connections=50) as via_a,
        ApiClient(f"http://127.0.0.1:{b.port}", key, connections=50) as via_b,
    ):
        try:
            answers = await asyncio.gather(
                *(
                    (via_a if n % 2 else via_b).publish(ROOM, text, idempotency_key)
                    for n in range(ATTEMPTS)
                )
            )
            assert len({(p.room, p.id) for p in answers}) == 1
            assert sorted(p.duplicate for p in answers) == [False] + [True] * (
                ATTEMPTS - 1
            )
            assert await app_messages(postgres_url, ROOM, APP) == 1
            await assert_each_got_it_once(members, answers[0].id, text)
        finally:
            await close_quietly(*(c for clients in members.values() for c in clients))
