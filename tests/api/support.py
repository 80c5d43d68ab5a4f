"""What the tests of the server API share: a key made as an operator makes it, the store's rows counted.

``create_api_key`` runs ``rawws api-key create`` as a subprocess on the nodes'
database (their ``RAWWS_*`` environment), the way ``docs/server-api.md`` says a
key is made, and returns the key it printed once. ``app_messages`` counts, with
the database's own client, the rows an app stored in a room: what "exactly once"
is measured on.
"""

from __future__ import annotations

import asyncio
import re
import sys

from tests.support.helpers import TIMEOUT_S
from tests.support.nodes import REPO_ROOT, serve_environment

KEY_PATTERN = re.compile(r"rwk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


async def rawws_command(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """``python -m rawws ARGS`` with ``env`` (and no other RAWWS_*): exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rawws",
        *args,
        cwd=REPO_ROOT,
        env=serve_environment(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), TIMEOUT_S * 6)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def create_api_key(name: str, *flags: str, env: dict[str, str]) -> str:
    """``rawws api-key create NAME FLAGS``: the key it printed (it is printed once, nowhere else)."""
    code, out, err = await rawws_command("api-key", "create", name, *flags, env=env)
    assert code == 0, (out, err)
    found = KEY_PATTERN.findall(out)
    assert len(found) == 1, "api-key create printed no key (or more than one)"
    assert found[0] not in err
    return found[0]


async def app_messages(postgres_url: str, room: str, user: str) -> int:
    """How many rows of ``room`` in PostgreSQL were published by the app ``user``."""
    import asyncpg

    connection = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
    try:
        count = await connection.fetchval(
            'SELECT count(*) FROM messages WHERE room = $1 AND "user" = $2 AND app',
            room,
            user,
        )
    finally:
        await connection.close()
    return int(count)


async def idempotency_records(postgres_url: str) -> int:
    import asyncpg

    connection = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
    try:
        count = await connection.fetchval("SELECT count(*) FROM api_publishes")
    finally:
        await connection.close()
    return int(count)
