"""Five nodes started at once on a fresh PostgreSQL database all come up, twenty times over.

Found from outside: two nodes started together on a new database (as
``docs/cluster.md`` says to) killed one of them in 3 of 4 tries, with
``IntegrityError … "pg_type_typname_nsp_index" [SQL: CREATE TABLE schema_version …]``:
both saw no table and both made it. Schema creation and migration now run under
a PostgreSQL advisory lock (``rawws.store.schema.lock_schema``; SQLite: its write
lock, taken up front). Real ``rawws serve`` processes; each round a database (or a
data directory) of its own, so every round races on an empty one.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import asyncpg

from tests.support.helpers import http
from tests.support.nodes import LISTENING, POLL_S, Node, start_node
from tests.support.postgres import PostgresCluster
from tests.support.redis_server import RedisServer

ROUNDS = 20
NODES = 5

_rounds = itertools.count(1)


async def fresh_database(cluster: PostgresCluster) -> str:
    name = f"start_race_{next(_rounds)}"
    admin = await asyncpg.connect(
        host=cluster.host, port=cluster.port, user=cluster.user, database="postgres"
    )
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return cluster.url(name)


async def test_five_nodes_started_at_once_on_a_fresh_database_all_come_up(
    postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    for round_number in range(ROUNDS):
        url = await fresh_database(postgres_cluster)
        started = await asyncio.gather(
            *(
                start_node(tmp_path / f"round-{round_number}-node-{n}", "--db", url)
                for n in range(NODES)
            ),
            return_exceptions=True,
        )
        nodes = [node for node in started if isinstance(node, Node)]
        try:
            failed = [str(error) for error in started if not isinstance(error, Node)]
            assert not failed, f"round {round_number}: {failed[0]}"
            for node in nodes:
                ready = await http(node.port, "GET", "/readyz")
                assert ready.status == 200, (round_number, ready.body)
        finally:
            for node in nodes:
                node.kill()  # a graceful stop is not what is tested here, and costs
            await asyncio.gather(*(node.process.wait() for node in nodes))


SQLITE_ROUNDS = (
    5  # six processes a round; the store-level test opens 30 new files × 5 stores
)


async def test_five_workers_started_at_once_on_a_new_sqlite_file_all_come_up(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """``--workers 5`` on a new data directory: five processes make one SQLite file's schema at once."""
    for round_number in range(SQLITE_ROUNDS):
        node = await start_node(
            tmp_path / f"workers-{round_number}",
            "--workers",
            str(NODES),
            "--bus",
            redis_server.url,
            port=0,
            env={"RAWWS_JWT_SECRET": "workers-start-secret-" + "w" * 32},
        )
        try:
            while len(LISTENING.findall(node.log())) < NODES:
                assert node.process.returncode is None, (round_number, node.log())
                await asyncio.sleep(POLL_S)
            assert (await http(node.port, "GET", "/readyz")).status == 200
            assert node.process.returncode is None, (round_number, node.log())
        finally:
            assert await node.stop() == 0, (round_number, node.log())
