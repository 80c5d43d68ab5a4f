"""The JavaScript client (rawws/chat/static/rawws.js) under Node, against real `rawws serve` processes.

The tests themselves are tests/js/*.test.mjs (`node --test`); this module starts
the servers they talk to, passes their addresses in the environment and fails
on any Node test's failure, with Node's report. Node 20 has a WebSocket only
behind ``--experimental-websocket`` (given when this Node knows the flag).
Without Node the test is skipped, except in CI (``CI=true``), where that is a
failure, as for nginx and Chromium.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.nodes import Node, start_node

HERE = Path(__file__).resolve().parent
NODE_RUN_TIMEOUT_S = (
    300.0  # every Node test together; each wait inside is bounded far below
)
SHORT_ACCESS_TTL_S = 6  # tokens that expire during a test, so that renewal is seen
GENEROUS_LIMITS = (
    "--registrations-per-hour-per-address", "100000",
    "--logins-per-minute-per-address", "100000",
    "--logins-per-minute-per-user", "100000",
    "--tickets-per-minute-per-user", "100000",
    "--websockets-per-address", "100000",
    "--websockets-per-user", "1000",
)  # fmt: skip


def node_binary() -> str:
    found = shutil.which("node") or shutil.which("nodejs")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is required in CI (Debian's nodejs package)")
        pytest.skip("node not installed")
    return found


def node_flags(node: str) -> list[str]:
    """``--experimental-websocket`` where this Node has the flag (20.10 and later 20s; 22 needs none)."""
    probe = subprocess.run(
        [node, "--experimental-websocket", "-e", "0"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return ["--experimental-websocket"] if probe.returncode == 0 else []


async def test_the_javascript_client_under_node(tmp_path: Path) -> None:
    node = node_binary()
    files = sorted(str(path) for path in HERE.glob("*.test.mjs"))
    assert files, "no tests/js/*.test.mjs"
    servers: list[Node] = []
    try:
        servers.append(await start_node(tmp_path / "main", *GENEROUS_LIMITS))
        servers.append(
            await start_node(
                tmp_path / "short-tokens",
                *GENEROUS_LIMITS,
                "--access-ttl",
                str(SHORT_ACCESS_TTL_S),
            )
        )
        env = {
            **os.environ,
            "RAWWS_URL": f"http://127.0.0.1:{servers[0].port}",
            "RAWWS_SHORT_TOKENS_URL": f"http://127.0.0.1:{servers[1].port}",
            "NODE_NO_WARNINGS": "1",
        }
        process = await asyncio.create_subprocess_exec(
            node, *node_flags(node), "--test", *files,
            cwd=HERE.parents[1], env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            out, _ = await asyncio.wait_for(process.communicate(), NODE_RUN_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise AssertionError(
                f"node --test did not end within {NODE_RUN_TIMEOUT_S}s"
            ) from None
        report = out.decode(errors="replace")
        print(report)
        assert process.returncode == 0, report
        assert "# fail 0" in report and "# pass 0" not in report, report
    finally:
        for server in servers:
            await server.stop()
