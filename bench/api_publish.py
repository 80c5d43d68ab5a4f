"""Issue 23, item 9: the server API's publish on one node, against a user's ``say``.

    python -m bench.api_publish [--members 1000] [--rounds 5] [--messages 40]
                                [--publishes 2000] [--clients 4]

One `rawws serve` (SQLite in a fresh temporary data dir, 127.0.0.1 only, compression
off so the encode-once path is measured) and an API key made with ``rawws api-key
create`` on its database. In each round, in an order that alternates between rounds:

* **publishes/s**: ``--clients`` tasks, each an ``ApiClient`` on one keep-alive
  connection, publish ``--publishes`` messages in all into a room nobody is in (the
  API's own cost, not the fan-out's), once without and once with an
  ``idempotency_key``. Wall time and node CPU (``/proc/<pid>/stat``) per publish;
* **publish → deliver** to ``--members`` WebSocket members of one room, lock-step: one
  publish, wait until every member has it, the next. Latency of each delivery, from
  just before the HTTP call to the read that brought it to that member; p50 and p99
  over the round's deliveries; node CPU per message;
* **say → deliver**: the same, the message sent as ``say`` by one more connection.

The members are raw sockets counting ``"type":"message"`` in what they read (one
load process reading 1,000 sockets: its own share is in every latency, the same
for both kinds). Figures are the medians over rounds. Bounded: every wait has a
deadline, and the node is stopped at the end whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from rawws.api import ApiClient
from testkit import chat_token, free_port, masked_frame, start, stop, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
ROOM, QUIET = "bench", "bench-quiet"
MARK = b'"type":"message"'
PASSWORD = "correct horse battery"
WAIT_S = 60.0
KEY_PATTERN = re.compile(r"rwk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")
TEXT = "ACME 101.25 +0.12"


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class Member:
    """A raw WebSocket in a room that counts ``message`` frames and stamps when each count was reached."""

    def __init__(self) -> None:
        self.count = 0
        self.arrivals: list[float] = []  # arrivals[n]: when message n + 1 came
        self._tail = b""
        self.writer: asyncio.StreamWriter | None = None
        self.changed = asyncio.Event()

    async def open(self, port: int, token: str, room: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(head.split(b"\r\n")[0].decode())
        self.writer = writer
        self.send({"type": "join", "room": room})
        self._task = asyncio.get_running_loop().create_task(self._read(reader))

    def send(self, frame: dict[str, object]) -> None:
        assert self.writer is not None
        self.writer.write(masked_frame(0x1, json.dumps(frame).encode()))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(65536):
            now = time.perf_counter()
            window = self._tail + data
            found = window.count(MARK)
            self._tail = window[-(len(MARK) - 1) :]
            self.count += found
            self.arrivals.extend([now] * found)
            self.changed.set()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def wait_all(members: list[Member], target: int) -> None:
    deadline = time.monotonic() + WAIT_S
    for member in members:
        while member.count < target:
            member.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"a member has {member.count} of {target} messages")
            await asyncio.wait_for(member.changed.wait(), remaining)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def lockstep(
    members: list[Member],
    pid: int,
    messages: int,
    send: Callable[[int], Awaitable[None]],
) -> dict[str, float]:
    """``messages`` sent one at a time, each delivered to every member before the next."""
    latencies: list[float] = []
    cpu0 = cpu_seconds(pid)
    for n in range(messages):
        target = members[0].count + 1
        sent_at = time.perf_counter()
        await send(n)
        await wait_all(members, target)
        latencies.extend(m.arrivals[target - 1] - sent_at for m in members)
    cpu = cpu_seconds(pid) - cpu0
    return {
        "p50_ms": percentile(latencies, 0.50) * 1e3,
        "p99_ms": percentile(latencies, 0.99) * 1e3,
        "cpu_us_per_message": cpu / messages * 1e6,
    }


async def throughput(
    url: str, key: str, pid: int, publishes: int, clients: int, keyed: bool, tag: str
) -> dict[str, float]:
    """``publishes`` in all by ``clients`` keep-alive clients at once into QUIET."""
    share = publishes // clients
    apis = [ApiClient(url, key, connections=1, timeout=WAIT_S) for _ in range(clients)]

    async def worker(c: int) -> None:
        for n in range(share):
            idem = f"{tag}-{c}-{n}" if keyed else None
            await apis[c].publish(QUIET, TEXT, idem)

    try:
        await apis[0].publish(QUIET, "warm-up")
        cpu0, wall0 = cpu_seconds(pid), time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(worker(c) for c in range(clients))), WAIT_S * 5
        )
        wall, cpu = time.perf_counter() - wall0, cpu_seconds(pid) - cpu0
        assert all(api.pool.opened == 1 for api in apis), "keep-alive did not hold"
    finally:
        for api in apis:
            await api.close()
    done = share * clients
    return {"per_s": done / wall, "cpu_us_per_publish": cpu / done * 1e6}


def create_key(data_dir: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAWWS_")}
    result = subprocess.run(
        [sys.executable, "-m", "rawws", "api-key", "create", "bench",
         "--scope", "publish", "--per-second", "1000000", "--burst", "1000000"],
        cwd=ROOT, env={**env, "RAWWS_DATA_DIR": data_dir},
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    found = KEY_PATTERN.search(result.stdout)
    if found is None:
        raise RuntimeError("rawws api-key create printed no key")
    return found.group(0)


async def measure(port: int, pid: int, key: str, args: argparse.Namespace) -> dict:
    token = await asyncio.to_thread(chat_token, port, "bench", PASSWORD)
    members = [Member() for _ in range(args.members)]
    for first in range(0, len(members), 100):
        await asyncio.gather(
            *(m.open(port, token, ROOM) for m in members[first : first + 100])
        )
    sayer, quiet = Member(), Member()
    await sayer.open(port, token, ROOM)
    await quiet.open(port, token, QUIET)  # makes the quiet room exist, then only reads
    await asyncio.sleep(1.0)  # every join answered
    url = f"http://127.0.0.1:{port}"
    api = ApiClient(url, key, timeout=WAIT_S)

    async def publish(n: int) -> None:
        await api.publish(ROOM, f"{TEXT} #{n}")

    async def say(n: int) -> None:
        sayer.send({"type": "say", "room": ROOM, "text": f"{TEXT} #{n}"})

    rounds: list[dict[str, dict[str, float]]] = []
    try:
        await publish(-1)  # warm-up, one of each
        await wait_all(members, 1)
        await say(-1)
        await wait_all(members, 2)
        for r in range(args.rounds):
            figures: dict[str, dict[str, float]] = {}
            steps: list[tuple[str, Callable[[], Awaitable[dict[str, float]]]]] = [
                ("publish", lambda: lockstep(members, pid, args.messages, publish)),
                ("say", lambda: lockstep(members, pid, args.messages, say)),
                ("api", lambda r=r: throughput(
                    url, key, pid, args.publishes, args.clients, False, f"r{r}")),
                ("api+key", lambda r=r: throughput(
                    url, key, pid, args.publishes, args.clients, True, f"r{r}")),
            ]  # fmt: skip
            for name, step in steps if r % 2 == 0 else steps[::-1]:
                figures[name] = await step()
            rounds.append(figures)
            print(f"round {r + 1}: {json.dumps(figures)}", file=sys.stderr, flush=True)
    finally:
        await api.close()
        for member in [*members, sayer, quiet]:
            member.close()
    return {
        name: {
            figure: statistics.median(rnd[name][figure] for rnd in rounds)
            for figure in rounds[0][name]
        }
        for name in rounds[0]
    }


def run(args: argparse.Namespace) -> dict:
    data_dir = tempfile.mkdtemp(prefix="rawws-api-bench-")
    port = free_port()
    key = create_key(data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAWWS_")}
    server = start(
        [sys.executable, "-m", "rawws", "serve", "--host", "127.0.0.1",
         "--port", str(port), "--data-dir", data_dir, "--log-level", "WARNING",
         "--compression", "off",
         "--ping-interval", "0"],  # the members count frames, they answer no ping
        env={
            **env,
            "RAWWS_LOGINS_PER_MINUTE_PER_USER": "1000",
            "RAWWS_WEBSOCKETS_PER_USER": "1000000",  # every member is the one bench user
            "RAWWS_WEBSOCKETS_PER_ADDRESS": "1000000",  # and comes from 127.0.0.1
            "RAWWS_CHAT_MESSAGES_PER_S": "100000",  # the say sender is not rate limited
            "RAWWS_CHAT_MESSAGE_BURST": "100000",
        },
    )  # fmt: skip
    try:
        wait_for_port(port, process=server)
        return asyncio.run(measure(port, server.pid, key, args))
    finally:
        stop(server, grace=20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.api_publish", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=40, help="per kind per round")
    parser.add_argument("--publishes", type=int, default=2000, help="per round")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = run(args)
    print(f"{args.members} members, {args.rounds} rounds (medians)")
    print("| what | figure |")
    print("|---|---|")
    for name in ("api", "api+key"):
        r = result[name]
        print(f"| publishes/s, {args.clients} keep-alive clients ({name}) | "
              f"{r['per_s']:,.0f}/s, node CPU {r['cpu_us_per_publish']:.0f} µs each |")  # fmt: skip
    for name in ("publish", "say"):
        r = result[name]
        print(f"| {name} → {args.members} members | p50 {r['p50_ms']:.2f} ms, "
              f"p99 {r['p99_ms']:.2f} ms, node CPU {r['cpu_us_per_message']:.0f} µs/message |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
