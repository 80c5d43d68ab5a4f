"""The client's I/O over real loopback sockets, against a small HTTP peer written here with h11.

The peer answers each request as the test says (a JSON body, silence, a close
before answering), and counts the connections it accepted, so keep-alive, the
per-call timeout and the retry of a publish are seen from the server's side.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import h11
import pytest

from rawws.api import ApiClient, ApiError, ApiUnreachable, Published

KEY = "rwk_0123456789ab_" + "k" * 43
#: what the peer does with one request: an answer (status, JSON), "silent" or "drop"
Behaviour = Callable[[dict[str, object]], tuple[int, dict[str, object]] | str]


@dataclass
class Peer:
    behaviour: Behaviour
    port: int = 0
    connections: int = 0
    requests: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    authorizations: set[bytes] = field(default_factory=set)

    async def serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                head, body = await self._request(conn, reader)
                if head is None:
                    return
                self.authorizations.add(dict(head.headers)[b"authorization"])
                payload = json.loads(body)
                self.requests.append((head.target.decode(), payload))
                what = self.behaviour(payload)
                if what == "drop":
                    return
                if what == "silent":
                    await asyncio.sleep(3600)
                assert isinstance(what, tuple)
                data = json.dumps(what[1]).encode()
                headers = [("Content-Type", "application/json")]
                headers.append(("Content-Length", str(len(data))))
                out = conn.send(h11.Response(status_code=what[0], headers=headers))
                out += conn.send(h11.Data(data=data)) + conn.send(h11.EndOfMessage())
                writer.write(out)
                await writer.drain()
                conn.start_next_cycle()
        finally:
            writer.close()

    async def _request(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> tuple[h11.Request | None, bytes]:
        head, body = None, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data and head is None:
                    return None, b""
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return head, body
            else:
                return None, b""


@pytest.fixture
async def peer() -> AsyncIterator[Callable[[Behaviour], Peer]]:
    servers: list[asyncio.Server] = []

    async def started(behaviour: Behaviour) -> Peer:
        made = Peer(behaviour)
        server = await asyncio.start_server(made.serve, "127.0.0.1", 0)
        servers.append(server)
        made.port = server.sockets[0].getsockname()[1]
        return made

    yield started  # type: ignore[misc]
    for server in servers:
        server.close()


def stored(ids: dict[str, int]) -> Behaviour:
    """A publish that stores once per idempotency key, as the server's spec says."""

    def behaviour(body: dict[str, object]) -> tuple[int, dict[str, object]]:
        key = str(body.get("idempotency_key"))
        duplicate = key in ids
        ids.setdefault(key, len(ids) + 1)
        return 200, {"room": body["room"], "id": ids[key], "duplicate": duplicate}

    return behaviour


async def test_calls_in_a_row_share_one_kept_alive_connection(peer) -> None:
    server = await peer(stored({}))
    async with ApiClient(f"http://127.0.0.1:{server.port}", KEY) as api:
        for n in range(5):
            sent = await api.publish("stocks", f"quote {n}", f"key-{n}")
            assert sent == Published("stocks", n + 1, False)
    assert server.connections == 1
    assert [target for target, _ in server.requests] == ["/api/v1/publish"] * 5
    assert server.authorizations == {f"Bearer {KEY}".encode()}


async def test_concurrent_calls_each_get_a_connection_up_to_the_pool_size(peer) -> None:
    server = await peer(stored({}))
    async with ApiClient(f"http://127.0.0.1:{server.port}", KEY, connections=3) as api:
        sent = await asyncio.gather(
            *(api.publish("r", "t", f"k{n}") for n in range(30))
        )
    assert sorted(p.id for p in sent) == list(range(1, 31))
    assert 1 <= server.connections <= 3


async def test_a_silent_server_is_unreachable_after_the_calls_timeout(peer) -> None:
    server = await peer(lambda body: "silent")
    async with ApiClient(f"http://127.0.0.1:{server.port}", KEY, timeout=0.2) as api:
        with pytest.raises(ApiUnreachable, match="no answer within"):
            await api.presence("lobby")


async def test_a_refused_connection_is_unreachable() -> None:
    # a port nobody listens on any more
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    free = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    async with ApiClient(f"http://127.0.0.1:{free}", KEY) as api:
        with pytest.raises(ApiUnreachable, match="cannot connect"):
            await api.publish("r", "t")


async def test_a_publish_retried_after_lost_answers_keeps_its_idempotency_key(
    peer,
) -> None:
    """Two attempts reach the server and are dropped unanswered, a 503 follows: one key throughout."""
    ids: dict[str, int] = {}
    store = stored(ids)
    script = iter(["drop", "drop", "unavailable"])

    def behaviour(body: dict[str, object]) -> tuple[int, dict[str, object]] | str:
        step = next(script, "store")
        if step == "unavailable":
            error = {"status": 503, "code": "unavailable", "message": "retry"}
            return 503, {"error": error}
        answer = store(body)
        return step if step == "drop" else answer

    server = await peer(behaviour)
    async with ApiClient(f"http://127.0.0.1:{server.port}", KEY) as api:
        sent = await api.publish("feed", "ACME 1.00", retries=5)
    keys = {body["idempotency_key"] for _, body in server.requests}
    assert len(server.requests) == 4 and len(keys) == 1
    assert len(str(keys.pop())) >= 32
    # the first two attempts were stored, unanswered: the answer that came is a duplicate
    assert sent == Published("feed", 1, True) and len(ids) == 1


async def test_retries_stop_at_an_answer_that_is_the_servers_decision(peer) -> None:
    def conflict(body: dict[str, object]) -> tuple[int, dict[str, object]]:
        error = {"status": 409, "code": "idempotency_conflict", "message": "other body"}
        return 409, {"error": error}

    server = await peer(conflict)
    async with ApiClient(f"http://127.0.0.1:{server.port}", KEY) as api:
        with pytest.raises(ApiError) as raised:
            await api.publish("r", "t", "same", retries=5)
    assert raised.value.code == "idempotency_conflict"
    assert len(server.requests) == 1


async def test_retries_give_up_after_their_count(peer) -> None:
    server = await peer(lambda body: "drop")
    async with ApiClient(f"http://127.0.0.1:{server.port}", KEY) as api:
        with pytest.raises(ApiUnreachable):
            await api.publish("r", "t", retries=2)
    assert len(server.requests) == 3


async def test_a_stream_block_appends_then_finishes(peer) -> None:
    def streams(body: dict[str, object]) -> tuple[int, dict[str, object]]:
        if "room" in body:
            return 200, {"room": body["room"], "stream": "s1"}
        if "text" in body:
            return 200, {"stream": "s1", "seq": len(server.requests) - 1}
        return 200, {"room": "r", "stream": "s1", "id": 42}

    server = await peer(streams)
    async with ApiClient(f"http://127.0.0.1:{server.port}", KEY) as api:
        async with api.stream("r") as stream:
            assert await stream.append("a") == 1
            assert await stream.append("b") == 2
    assert stream.finished is not None and stream.finished.id == 42
    assert [target.rsplit("/", 1)[1] for target, _ in server.requests] == [
        "stream_open",
        "stream_append",
        "stream_append",
        "stream_finish",
    ]


async def test_a_stream_block_that_raised_still_finishes_and_raises(peer) -> None:
    def streams(body: dict[str, object]) -> tuple[int, dict[str, object]]:
        if "room" in body:
            return 200, {"room": body["room"], "stream": "s9"}
        if "text" in body:
            return 200, {"stream": "s9", "seq": 1}
        return 200, {"room": "r", "stream": "s9", "id": 7}

    server = await peer(streams)
    async with ApiClient(f"http://127.0.0.1:{server.port}", KEY) as api:
        with pytest.raises(LookupError):
            async with api.stream("r") as stream:
                await stream.append("partial")
                raise LookupError("the model failed")
    assert stream.finished is not None and stream.finished.id == 7
    assert server.requests[-1][0] == "/api/v1/stream_finish"
