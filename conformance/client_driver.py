"""The default client driver: ``python -m conformance.client_driver URL AGENT`` runs the rawws client through wstest.

It asks the fuzzing server at ``URL`` how many cases it holds (``/getCaseCount``),
runs each one (``/runCase?case=N&agent=AGENT``) by echoing every message back
as it came (text as text, binary as binary) until the server closes, and last
asks for the reports (``/updateReports?agent=AGENT``). The fuzzing server's spec
already holds the selected cases, so N runs from 1 to the count.

The client runs like the server's echo endpoint: a 64 MiB message limit and
permessage-deflate offered. No keepalive pings: they would show up in the
cases' wire logs as frames the case did not ask for.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from urllib.parse import quote

from rawws.client.connect import ConnectionClosed, connect

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
OPEN_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 10.0
CASE_TIMEOUT_S = 300.0  # one case; the slowest (9.x, 12.x, 13.x) take seconds


def _client(url: str) -> connect:
    return connect(
        url,
        max_size=MAX_MESSAGE_BYTES,
        compression="deflate",
        ping_interval=None,
        open_timeout=OPEN_TIMEOUT_S,
        close_timeout=CLOSE_TIMEOUT_S,
    )


async def case_count(base_url: str) -> int:
    async with _client(f"{base_url}/getCaseCount") as ws:
        message = await ws.recv()
    return int(message)


async def run_case(base_url: str, case: int, agent: str) -> None:
    """Echo every message of one case until the fuzzing server closes the connection."""
    ws = await _client(f"{base_url}/runCase?case={case}&agent={quote(agent)}")
    try:
        while True:
            message = await ws.recv()
            await ws.send(message)
    except ConnectionClosed:
        pass
    finally:
        await ws.close()


async def update_reports(base_url: str, agent: str) -> None:
    async with _client(f"{base_url}/updateReports?agent={quote(agent)}") as ws:
        await ws.wait_closed()


async def run(base_url: str, agent: str) -> int:
    base_url = base_url.rstrip("/")
    count = await case_count(base_url)
    print(f"{count} cases", flush=True)
    for case in range(1, count + 1):
        try:
            await asyncio.wait_for(run_case(base_url, case, agent), CASE_TIMEOUT_S)
        except (TimeoutError, OSError) as exc:
            print(f"case {case}: {exc!r}", file=sys.stderr, flush=True)
    await update_reports(base_url, agent)
    print("reports updated", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m conformance.client_driver", description=__doc__.splitlines()[0]
    )
    parser.add_argument("url", help="the fuzzing server, e.g. ws://127.0.0.1:9001")
    parser.add_argument("agent", help="the name the reports are filed under")
    args = parser.parse_args(argv)
    return asyncio.run(run(args.url, args.agent))


if __name__ == "__main__":
    sys.exit(main())
