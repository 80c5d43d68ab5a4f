"""Reconnect storm: every chat connection dropped at once while messages keep coming, all back within a second.

    python -m experiments.perf.storm [--quick] [--clients 2000] [--rooms 20] [--rate 2] [--base-tree DIR]

``rawws serve`` (SQLite) with ``--clients`` connections spread over
``--rooms`` rooms, one sender per room posting ``--rate`` messages/s the
whole time. Once everyone has joined, every client connection is dropped at
once (TCP reset by the client, as a network blip does), and all of them
reconnect at random moments within one second, each joining its room again
with ``since`` = the last id it saw.

Figures: time from the drop until every client is caught up (it has received
the newest message that was acknowledged to its room's sender when it
reconnected), server CPU over that window, peak server RSS, errors (failed
handshakes, error frames: must be 0), and the exactly-once check: when the
senders stop, every client holds every message of its room since it first
joined, each once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time

from experiments.perfkit import (
    CHAT_ENV,
    PASSWORD,
    RawClient,
    ServerProcess,
    cpu_seconds,
    raise_fd_limit,
    rawws_command,
    rss_kib,
)
from testkit import chat_token


class Member:
    """One chat client across its two connections: the ids it got, when it was caught up."""

    def __init__(self, room: str, token: str) -> None:
        self.room, self.token = room, token
        self.ids: list[int] = []
        self.first_last_id: int | None = None  # ``joined.last_id`` of its first join
        self.target = 0  # the newest acked id in its room when it reconnected
        self.caught_up_at: float | None = None
        self.errors = 0
        self.client: RawClient | None = None
        self.reconnected_at: float | None = None  # when its second 101 arrived

    def on_message(self, text: str, now: float) -> None:
        if text.startswith('{"type":"message"'):
            message_id = json.loads(text)["id"]
            self.ids.append(message_id)
            if self.caught_up_at is None and self.target and message_id >= self.target:
                self.caught_up_at = now
        elif text.startswith('{"type":"joined"'):
            if self.first_last_id is None:
                self.first_last_id = json.loads(text)["last_id"]
            if (
                self.target
                and self.caught_up_at is None
                and json.loads(text)["last_id"] < self.target
            ):
                pass  # still waiting for the replay
        elif text.startswith('{"type":"error"'):
            self.errors += 1

    async def connect(self, port: int) -> None:
        self.client = RawClient(self.on_message)
        await self.client.open(port, "/ws", token=self.token)
        since = self.ids[-1] if self.ids else self.first_last_id
        join: dict[str, object] = {"type": "join", "room": self.room}
        if since is not None:
            join["since"] = since
        self.client.send_json(join)


class Sender:
    def __init__(self, room: str, token: str) -> None:
        self.room, self.token = room, token
        self.acked: list[int] = []
        self.client = RawClient(self.on_message)

    def on_message(self, text: str, _: float) -> None:
        if text.startswith('{"type":"ack"'):
            self.acked.append(json.loads(text)["id"])


async def storm(
    port: int, pid: int, clients: int, rooms: int, rate: float, users: int
) -> dict[str, object]:
    tokens = [chat_token(port, f"user{index}", PASSWORD) for index in range(users)]
    room_names = [f"room{index}" for index in range(rooms)]
    members = [
        Member(room_names[index % rooms], tokens[index % users])
        for index in range(clients)
    ]
    senders = [
        Sender(room, tokens[index % users]) for index, room in enumerate(room_names)
    ]
    for sender in senders:
        await sender.client.open(port, "/ws", token=sender.token)
        sender.client.send_json({"type": "join", "room": sender.room})
    for start in range(0, clients, 100):
        await asyncio.gather(
            *(member.connect(port) for member in members[start : start + 100])
        )
    await asyncio.sleep(2.0)
    if any(member.first_last_id is None for member in members):
        raise RuntimeError("not every client joined")

    stop = asyncio.Event()

    async def send(sender: Sender) -> None:
        count = 0
        while not stop.is_set():
            count += 1
            sender.client.send_json(
                {
                    "type": "say",
                    "room": sender.room,
                    "text": f"{sender.room} message {count}",
                }
            )
            await asyncio.sleep(1.0 / rate)

    sending = [
        asyncio.get_running_loop().create_task(send(sender)) for sender in senders
    ]
    await asyncio.sleep(1.5)
    peak_rss = rss_kib(pid)
    cpu0 = cpu_seconds(pid)
    dropped_at = time.perf_counter()
    for member in members:
        assert member.client is not None and member.client.writer is not None
        member.client.writer.transport.abort()  # a reset, no close frame: what a network blip looks like

    async def reconnect(member: Member) -> None:
        await asyncio.sleep(random.random())
        acked = senders[room_names.index(member.room)].acked
        member.target = acked[-1] if acked else 0
        try:
            await member.connect(port)
            member.reconnected_at = time.perf_counter()
        except (OSError, RuntimeError):
            member.errors += 1

    reconnecting = asyncio.gather(*(reconnect(member) for member in members))
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:
        peak_rss = max(peak_rss, rss_kib(pid))
        if reconnecting.done() and all(
            m.caught_up_at is not None or not m.target for m in members
        ):
            break
        await asyncio.sleep(0.05)
    await reconnecting
    cpu = cpu_seconds(pid) - cpu0
    caught_up = [m.caught_up_at for m in members if m.caught_up_at is not None]
    all_caught_up_s = (
        max(caught_up) - dropped_at
        if len(caught_up) == len([m for m in members if m.target])
        else None
    )
    delays = sorted(t - dropped_at for t in caught_up)
    reconnected = sorted(
        m.reconnected_at - dropped_at for m in members if m.reconnected_at is not None
    )
    stop.set()
    await asyncio.gather(*sending)
    await asyncio.sleep(2.0)  # the last acks and deliveries

    # Exactly once: every message of its room since its first join, none twice.
    duplicates = missing = 0
    for member in members:
        sender = senders[room_names.index(member.room)]
        expected = [
            i
            for i in sender.acked
            if member.first_last_id is not None and i > member.first_last_id
        ]
        got = member.ids
        duplicates += len(got) - len(set(got))
        missing += len(set(expected) - set(got))
    for member in members:
        if member.client is not None:
            member.client.close()
    for sender in senders:
        sender.client.close()
    return {
        "clients": clients,
        "rooms": rooms,
        "messages": sum(len(s.acked) for s in senders),
        "all_caught_up_s": all_caught_up_s,
        "caught_up_p50_s": delays[len(delays) // 2] if delays else None,
        "caught_up_p90_s": delays[len(delays) * 9 // 10] if delays else None,
        "last_reconnected_s": reconnected[-1] if reconnected else None,
        "cpu_s": cpu,
        "peak_rss_mib": peak_rss / 1024,
        "errors": sum(m.errors for m in members),
        "duplicates": duplicates,
        "missing": missing,
    }


def run(name: str, command: list[str], args: argparse.Namespace) -> dict[str, object]:
    server = ServerProcess(name, command, CHAT_ENV).start()
    spy = None
    if (
        args.py_spy
    ):  # the whole run: the first connect wave is the same work as the reconnect wave
        spy = subprocess.Popen(
            [
                os.path.join(os.path.dirname(sys.executable), "py-spy"),
                "record",
                "-r",
                "100",
                "-f",
                "raw",
                "-o",
                f"{args.py_spy}.{name}.txt",
                "-p",
                str(server.pid),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        return asyncio.run(
            storm(
                server.port, server.pid, args.clients, args.rooms, args.rate, args.users
            )
        )
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=30)
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.perf.storm", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="200 clients in 4 rooms (a smoke run)"
    )
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument(
        "--rate",
        type=float,
        default=2.0,
        help="messages/s per room while the storm runs",
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--base-tree",
        help="also run rawws from this unpacked source tree, as rawws@base",
    )
    parser.add_argument("--json", help="write the raw figures here")
    parser.add_argument(
        "--py-spy",
        help="record the server with py-spy into PREFIX.<server>.txt (collapsed stacks)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.rooms, args.users = 200, 4, 10
    raise_fd_limit()
    servers = {"rawws": rawws_command()}
    if args.base_tree:
        servers["rawws@base"] = [
            sys.executable,
            "-m",
            "testkit.base_tree",
            args.base_tree,
            *rawws_command()[3:],
        ]
    results: dict[str, list[dict[str, object]]] = {name: [] for name in servers}
    for round_index in range(args.rounds):
        names = list(servers)
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            figure = run(name, servers[name], args)
            results[name].append(figure)
            print(f"  {name}: {figure}", flush=True)
    print(
        "| server | clients | caught up after drop (s) | server CPU (s) | peak RSS (MiB) | errors | missing | duplicates |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, figures in results.items():
        for f in figures:
            caught = (
                f"{f['all_caught_up_s']:.2f}"
                if f["all_caught_up_s"] is not None
                else "not all"
            )
            print(
                f"| {name} | {f['clients']} | {caught} | {f['cpu_s']:.2f} | {f['peak_rss_mib']:.0f} | {f['errors']} "
                f"| {f['missing']} | {f['duplicates']} |"
            )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
