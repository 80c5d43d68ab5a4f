"""A victim's login latency under a guessing flood: ``python -m soak.guessing``.

Starts ``rawws serve`` on 127.0.0.1 with the real argon2 settings (64 MiB, 3
passes), registers a victim, then sends 100 concurrent bad logins (unknown
names: each still costs a full hash, on the decoy) from one address, or from
100 (127.0.0.x source addresses), and times the victim's own login started a
moment later from an address of its own. Prints one JSON line per scenario:
the victim's status and seconds, how the flood was answered, and ``pass``.

Pass: under one address's flood the victim signs in (200) within
``ONE_ADDRESS_BOUND`` hash-times (its own login alone is one); under 100
addresses' flood the victim signs in within that bound or is told ``503`` at
once (within one hash-time) rather than queued behind the flood. Exit status 1
when a scenario fails.

Bounded: each scenario gives up after ``TIMEOUT_S``; the server is stopped by PID.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from testkit import free_port, start, stop, wait_for_port

FLOOD = 100
TIMEOUT_S = 50.0
PASSWORD = "victim-Passw0rd-horse"
HEAD_START_S = 0.3  # the flood is queued before the victim arrives
ONE_ADDRESS_BOUND = 6  # hash-times: one running job to wait for and its own, with room for a busy machine


async def post(
    port: int, path: str, body: dict[str, str], source: str
) -> tuple[int, float]:
    """One HTTP/1.1 POST from ``source``: its status and how long it took."""
    data = json.dumps(body).encode()
    began = time.perf_counter()
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, local_addr=(source, 0)
    )
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
            + data
        )
        status_line = await reader.readline()
        await reader.read()
    finally:
        writer.close()
    return int(status_line.split()[1]), time.perf_counter() - began


async def scenario(port: int, addresses: int) -> dict[str, Any]:
    flood = [
        asyncio.create_task(
            post(
                port,
                "/auth/login",
                {"username": f"nobody{n}", "password": "wrong-password"},
                f"127.0.0.{10 + n % addresses}",
            )
        )
        for n in range(FLOOD)
    ]
    await asyncio.sleep(HEAD_START_S)
    status, seconds = await post(
        port,
        "/auth/login",
        {"username": "victim", "password": PASSWORD},
        "127.0.0.250",
    )
    answers = Counter(s for s, _ in await asyncio.gather(*flood))
    return {
        "flood_addresses": addresses,
        "victim_status": status,
        "victim_login_s": round(seconds, 3),
        "flood_answers": dict(sorted(answers.items())),
    }


async def main() -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        server = start(
            [sys.executable, "-m", "rawws", "serve", "--host", "127.0.0.1"]
            + ["--port", str(port), "--data-dir", str(Path(data) / "data")],
            log=Path(data) / "serve.log",
        )
        try:
            wait_for_port(port, process=server)
            status, alone = await post(
                port,
                "/auth/register",
                {"username": "victim", "password": PASSWORD},
                "127.0.0.250",
            )
            assert status == 201, status
            _, alone = await post(
                port,
                "/auth/login",
                {"username": "victim", "password": PASSWORD},
                "127.0.0.251",
            )
            print(json.dumps({"flood_addresses": 0, "victim_login_s": round(alone, 3)}))
            passed = True
            for addresses in (1, FLOOD):
                result = await asyncio.wait_for(scenario(port, addresses), TIMEOUT_S)
                result["pass"] = judge(result, alone, addresses)
                passed = passed and bool(result["pass"])
                print(json.dumps(result), flush=True)
                await asyncio.sleep(2.0)  # let the pool drain between scenarios
        finally:
            stop(server)
    sys.exit(0 if passed else 1)


def judge(result: dict[str, Any], alone: float, addresses: int) -> bool:
    seconds = float(result["victim_login_s"])
    signed_in = result["victim_status"] == 200 and seconds <= ONE_ADDRESS_BOUND * alone
    told_at_once = result["victim_status"] == 503 and seconds <= alone
    return signed_in or (addresses > 1 and told_at_once)


if __name__ == "__main__":
    asyncio.run(main())
