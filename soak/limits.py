"""The limits family: per-user and per-address limits on `rawws serve --workers 2 --bus`, and a guessing flood.

`python -m soak.limits [--flood S] [--json FILE]` prints one table; PASS means:

* a guessing flood at one user (wrong passwords from several addresses, as fast
  as the server answers) never refuses the user's own logins from an address
  of their own: every one is a 200 (a limit per user alone made them 429);
* a client alternating between the two workers (the kernel spreads each new
  connection) gets exactly the configured limit, not twice it: registrations
  from one address, registrations from one IPv6 /64 written as 40 different
  addresses, tickets for one user, open WebSockets for one user.

Everything runs on 127.0.0.1: one redis-server and one `rawws serve`, both
started here and stopped by their process ids. Clients are told apart by
``X-Forwarded-For`` (the server trusts 127.0.0.1 as its proxy).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from soak.run import Outcome, table
from testkit import StartupFailed, free_port, start, stop, wait_for_port

PASSWORD = "soak-Passw0rd-horse"
WRONG = "wrong-Passw0rd-guess"
REGISTRATIONS, TICKETS, WEBSOCKETS = 20, 30, 20  # the defaults, unchanged here
GUESSERS = 8  # concurrent guessing connections, over four addresses
VICTIM_LOGINS = 8  # the owner's own logins during the flood: under the 10 a minute per user at one address
START_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 20.0


async def call(
    port: int, method: str, path: str, payload: object = None, **headers: str
) -> tuple[int, bytes]:
    """One HTTP/1.1 request on its own connection: status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps(payload).encode() if payload is not None else b""
    head = {"Host": "soak", "Connection": "close", "Content-Length": str(len(body))}
    if payload is not None:
        head["Content-Type"] = "application/json"
    head.update({name.replace("_", "-"): value for name, value in headers.items()})
    lines = "".join(f"{name}: {value}\r\n" for name, value in head.items())
    writer.write(f"{method} {path} HTTP/1.1\r\n{lines}\r\n".encode() + body)
    try:
        data = await asyncio.wait_for(reader.read(), CALL_TIMEOUT_S)
    finally:
        writer.close()
    return int(data.split(b" ", 2)[1]), data.partition(b"\r\n\r\n")[2]


async def register(port: int, name: str, address: str) -> int:
    credentials = {"username": name, "password": PASSWORD}
    return (
        await call(port, "POST", "/auth/register", credentials, X_Forwarded_For=address)
    )[0]


async def login(port: int, name: str, password: str, address: str) -> int:
    credentials = {"username": name, "password": password}
    return (
        await call(port, "POST", "/auth/login", credentials, X_Forwarded_For=address)
    )[0]


async def token(port: int, name: str, address: str) -> str:
    await register(port, name, address)
    credentials = {"username": name, "password": PASSWORD}
    _, body = await call(
        port, "POST", "/auth/login", credentials, X_Forwarded_For=address
    )
    return str(json.loads(body)["access_token"])


async def upgrade(
    port: int, bearer: str, address: str
) -> tuple[int, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            "GET /ws HTTP/1.1\r\nHost: soak\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: rawws.chat.v1\r\nAuthorization: Bearer {bearer}\r\n"
            f"X-Forwarded-For: {address}\r\n\r\n"
        ).encode()
    )
    line = await asyncio.wait_for(reader.readline(), CALL_TIMEOUT_S)
    return int(line.split()[1]), writer


async def guessing_flood(port: int, flood_s: float, outcome: Outcome) -> None:
    """Guessers hammer ``victim``; meanwhile the victim signs in from home at a human pace
    (``VICTIM_LOGINS`` times over the flood, within the victim's own per-address budget)."""
    await register(port, "victim", "198.51.100.200")
    stop_at = time.monotonic() + flood_s
    guesses: list[int] = []

    async def guesser(n: int) -> None:
        while time.monotonic() < stop_at:
            guesses.append(await login(port, "victim", WRONG, f"192.0.2.{n % 4 + 1}"))

    flood = [asyncio.create_task(guesser(n)) for n in range(GUESSERS)]
    victim: list[tuple[int, float]] = []
    while time.monotonic() < stop_at:
        began = time.monotonic()
        status = await login(port, "victim", PASSWORD, "198.51.100.77")
        victim.append((status, time.monotonic() - began))
        await asyncio.sleep(flood_s / VICTIM_LOGINS)
    await asyncio.gather(*flood)
    ok = sum(1 for status, _ in victim if status == 200)
    latencies = [seconds * 1000 for _, seconds in victim]
    figures = outcome.figures
    figures["guesses_sent"] = len(guesses)
    figures["guesses_refused_429"] = guesses.count(429)
    figures["victim_logins_ok"] = f"{ok}/{len(victim)}"
    figures["victim_login_p50_ms"] = round(statistics.median(latencies), 1)
    figures["victim_login_max_ms"] = round(max(latencies), 1)
    if ok != len(victim):
        refused = sorted({status for status, _ in victim if status != 200})
        outcome.failures.append(
            f"the victim's own login was refused during the flood ({refused})"
        )
    if guesses.count(429) == 0:
        outcome.failures.append("the guessers were never limited")


async def across_workers(port: int, outcome: Outcome) -> None:
    """Each count must stop at its limit, though every request may land on either worker."""
    counts: dict[str, tuple[int, int]] = {}
    one = [
        await register(port, f"reg{n}", "198.51.100.1")
        for n in range(3 * REGISTRATIONS)
    ]
    counts["registrations_from_one_address"] = (one.count(201), REGISTRATIONS)
    six = [
        await register(port, f"six{n}", f"2001:db8::{n + 1:x}")
        for n in range(2 * REGISTRATIONS)
    ]
    counts["registrations_from_one_ipv6_64"] = (six.count(201), REGISTRATIONS)
    bearer = await token(port, "tia", "198.51.100.2")
    auth = f"Bearer {bearer}"
    tickets = [
        (await call(port, "POST", "/auth/ticket", Authorization=auth))[0]
        for _ in range(3 * TICKETS)
    ]
    counts["tickets_for_one_user"] = (tickets.count(200), TICKETS)
    bearer = await token(port, "wes", "198.51.100.3")
    held: list[asyncio.StreamWriter] = []
    statuses = []
    try:
        for n in range(WEBSOCKETS + 30):
            status, writer = await upgrade(port, bearer, f"203.0.113.{n + 1}")
            statuses.append(status)
            held.append(writer)
    finally:
        for writer in held:
            writer.close()
    counts["websockets_for_one_user"] = (statuses.count(101), WEBSOCKETS)
    for name, (got, limit) in counts.items():
        outcome.figures[name] = f"{got} (limit {limit})"
        if got != limit:
            outcome.failures.append(f"{name}: {got} where the limit is {limit}")


async def run_limits(flood_s: float = 10.0) -> Outcome:
    """Start Redis and a two-worker `rawws serve`, run both checks, stop both."""
    outcome = Outcome("limits", "sqlite, redis, --workers 2")
    directory = Path(tempfile.mkdtemp(prefix="rawws-soak-limits-"))
    redis_port, port = free_port(), free_port()
    redis = start(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(directory)],
        log=directory / "redis.log",
    )  # fmt: skip
    log = directory / "serve.log"
    server = None
    try:
        wait_for_port(redis_port, process=redis, name="redis-server")
        server = start(
            [sys.executable, "-m", "rawws", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "2", "--bus", f"redis://127.0.0.1:{redis_port}/0",
             "--data-dir", str(directory / "data"), "--forwarded-allow-ips", "127.0.0.1"],
            log=log,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("RAWWS_")},
                 "RAWWS_ARGON2_TIME_COST": "1", "RAWWS_ARGON2_MEMORY_KIB": "8192",
                 "RAWWS_ARGON2_PARALLELISM": "1"},
            new_session=True,
        )  # fmt: skip
        _both_listening(log, server)
        await guessing_flood(port, flood_s, outcome)
        await across_workers(port, outcome)
    finally:
        if server is not None:
            outcome.figures["sigterm_exit_code"] = stop(server, sig=signal.SIGTERM)
        stop(redis)
        if not outcome.failures:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            outcome.failures.append(f"logs kept in {directory}")
    return outcome


def _both_listening(log: Path, server: subprocess.Popen[bytes]) -> None:
    """Wait until both workers have logged "listening on": a request may then land on either."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while len(re.findall("listening on", log.read_text(errors="replace"))) < 2:
        if server.poll() is not None or time.monotonic() > deadline:
            raise StartupFailed(f"rawws serve --workers 2 did not start: see {log}")
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak.limits", description=__doc__)
    parser.add_argument(
        "--flood", type=float, default=10.0, help="seconds of guessing flood"
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    outcome = asyncio.run(run_limits(args.flood))
    print(table(outcome))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"figures": outcome.figures, "failures": outcome.failures}, indent=2
            )
        )
    return 0 if not outcome.failures else 1


if __name__ == "__main__":
    sys.exit(main())
