"""Redis Sentinel under real `rawws serve` processes: the primary is SIGKILLed mid-traffic.

Three nodes on one PostgreSQL reach their bus through three sentinels
(``redis+sentinel://…``). The primary dies while every member is talking; the sentinels
promote the replica; the nodes' bus follows it. Every member gets every acked message once,
in id order: those said before, during and after the failover.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from rawws.bus.redis import CHANNEL
from tests.support.chat_client import ChatClient, close_quietly, connect_chat, new_user
from tests.support.nodes import node_starter
from tests.support.redis_sentinel import RedisSentinels

WAIT_S = 30.0
SAID_AFTER_FAILOVER = 8  # by each member, once the replica is promoted
MOST_SAID = 400  # by each member: a failover that never comes ends the talk


async def test_the_bus_follows_a_promoted_replica_and_no_member_misses_a_message(
    tmp_path: Path, postgres_url: str, redis_sentinels: RedisSentinels
) -> None:
    env = {
        "RAWWS_DB_URL": postgres_url,
        "RAWWS_BUS_URL": redis_sentinels.url,
        "RAWWS_JWT_SECRET": "sentinel-failover-test-secret-" + "z" * 32,
        "RAWWS_PRESENCE_TTL_S": "2.0",
        "RAWWS_BUS_HEARTBEAT_S": "0.25",
        "RAWWS_REGISTRATIONS_PER_HOUR_PER_ADDRESS": "100000",  # every test client is 127.0.0.1
        "RAWWS_WEBSOCKETS_PER_ADDRESS": "100000",
    }
    clients: list[ChatClient] = []
    joined_at: dict[str, int] = {}  # user → the lobby's last id when they joined
    promoted = asyncio.Event()
    acked_at: list[tuple[float, int]] = []  # (monotonic time of the ack, id)
    async with node_starter(tmp_path, env) as start:
        started = [await start() for _ in range(3)]
        try:
            for n, node in enumerate(started):
                for i in range(2):
                    name = f"s{n}m{i}"
                    client = await connect_chat(
                        node.port, await new_user(node.port, name), name
                    )
                    joined_at[name] = (await client.join("lobby"))["last_id"]
                    clients.append(client)

            async def talk(client: ChatClient) -> list[int]:
                ids: list[int] = []
                after = 0
                while after < SAID_AFTER_FAILOVER and len(ids) < MOST_SAID:
                    after += promoted.is_set()
                    ref = f"{client.user}-{len(ids)}"
                    await client.say("lobby", f"{ref} text", ref=ref)
                    ids.append((await client.wait_ack(ref, timeout=WAIT_S))["id"])
                    acked_at.append((time.monotonic(), ids[-1]))
                    await asyncio.sleep(0.125)  # 8 a second: under the rate limit
                return ids

            traffic = [asyncio.ensure_future(talk(c)) for c in clients]
            await asyncio.sleep(1.0)
            old_primary = redis_sentinels.servers[0]
            old_primary.kill()
            killed = time.monotonic()
            try:
                new_primary = await asyncio.to_thread(
                    redis_sentinels.wait_promoted, old_primary.port
                )
            finally:
                promoted.set()
            failover_s = time.monotonic() - killed
            acked = await asyncio.gather(*traffic)

            total = sum(len(ids) for ids in acked)
            first = max(joined_at.values()) + 1
            last = first + total - 1
            assert sorted(i for ids in acked for i in ids) == list(
                range(first, last + 1)
            )
            during = [i for t, i in acked_at if killed < t < killed + failover_s]
            assert during, "nothing was said while the sentinels failed over"
            await asyncio.gather(
                *(c.wait_message_id("lobby", last, timeout=WAIT_S) for c in clients)
            )
            for client in clients:
                ids = client.entry_ids("lobby")
                assert ids == list(range(joined_at[client.user] + 1, last + 1)), (
                    f"{client.user}: {ids}"
                )

            # every node's subscription is on the promoted server: the bus followed it
            def subscribed() -> bool:
                numsub = redis_sentinels.server(new_primary).pubsub_numsub(CHANNEL)
                return bool(numsub == [(CHANNEL, len(started))])

            await asyncio.to_thread(
                redis_sentinels.wait, subscribed, "the nodes did not subscribe there"
            )
            for node in started:
                log = node.log()
                assert log.count("bus is down") == 1, log[-3000:]
                assert log.count("bus is back") == 1, log[-3000:]
            print(
                f"\nsentinel failover under 3 processes: promoted after {failover_s:.1f} s,"
                f" {total} acked ({len(during)} during the failover),"
                f" {total * len(clients)} delivered to {len(clients)} members,"
                " 0 lost, 0 duplicated"
            )
        finally:
            await close_quietly(*clients)
