"""Soak family "forged bus events": `python -m soak.bus_forgery [--duration S]`.

Two `rawws serve` nodes share one SQLite file and one Redis with a password. Members chat across
them while a forger who knows that password (the worst case: a shared or leaked Redis) publishes on
the channel for the whole run: messages as a member, with the ids the room is about to use; presence
events and heartbeats for users who are not there; and every real event it records off the channel,
played again. What must hold: 0 forged messages delivered, 0 fake users seen (presence or ``who``),
and the members' own books exact: every acked message delivered to every member of the room once, in
order, with the text that was said (a forged message taking a real id would show another text).

Bounded: ``duration_s`` of load (20 s by default), everything on 127.0.0.1, every process it starts
stopped by its own handle.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis
import websockets

from soak.clients import ChatClient
from testkit import chat_token, free_ports, start, stop, wait_for_port

CHANNEL = "rawws:events"
PASSWORD = "soak-Passw0rd-horse"
ROOM = "lobby"
MEMBERS = {"alice": 0, "bob": 1, "carol": 0}  # name → node
WITNESSES = ("witness-a", "witness-b")  # one per node: records presence and asks `who`
FORGED_PER_S = 200


@dataclass
class ForgeryOutcome:
    figures: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


@dataclass
class Forger:
    published: int = 0
    replayed: int = 0
    recorded: list[bytes] = field(default_factory=list)


@dataclass
class Witness:
    users_seen: set[str] = field(default_factory=set)
    forged_texts: int = 0
    who_answers: int = 0


def forged(sequence: int, next_id: int) -> list[bytes]:
    """One round of forgeries: a message as alice with the room's next ids, a presence event, a heartbeat."""
    events: list[dict[str, object]] = [
        {"v": 1, "k": "m", "n": "evil", "r": ROOM, "i": next_id + k, "u": "alice",
         "t": f"forged {sequence}", "s": 1.0}
        for k in range(3)
    ]  # fmt: skip
    events.append(
        {"v": 1, "k": "p", "n": "evil", "r": ROOM, "u": f"mallory{sequence}", "j": True}
    )
    events.append({"v": 1, "k": "h", "n": f"evil{sequence}", "h": {ROOM: next_id},
                   "p": {ROOM: [f"eve{sequence}"]}})  # fmt: skip
    return [json.dumps(e).encode() for e in events]


async def forge(
    url: str, stop_event: asyncio.Event, forger: Forger, next_id: list[int]
) -> None:
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.subscribe(CHANNEL)
    try:
        sequence = 0
        while not stop_event.is_set():
            while (message := await pubsub.get_message(timeout=0.001)) is not None:
                if message["type"] == "message" and len(forger.recorded) < 10_000:
                    forger.recorded.append(message["data"])
            sequence += 1
            for event in forged(sequence, next_id[0] + 1):
                await client.publish(CHANNEL, event)
                forger.published += 1
            for event in forger.recorded[-5:]:  # the newest real events, played again
                await client.publish(CHANNEL, event)
                forger.replayed += 1
            await asyncio.sleep(5 / FORGED_PER_S)
    finally:
        await pubsub.aclose()
        await client.aclose()


async def witness(
    port: int, token: str, stop_event: asyncio.Event, seen: Witness
) -> None:
    async with websockets.connect(
        f"ws://127.0.0.1:{port}/ws",
        additional_headers={"Authorization": f"Bearer {token}"},
        proxy=None,
        ping_interval=None,
        max_size=None,
    ) as ws:
        await ws.send(json.dumps({"type": "join", "room": ROOM}))

        async def ask() -> None:
            while not stop_event.is_set():
                await ws.send(json.dumps({"type": "who", "room": ROOM}))
                await asyncio.sleep(0.5)

        asking = asyncio.create_task(ask())
        reading = asyncio.create_task(_read(ws, seen))
        try:
            await stop_event.wait()
            await asyncio.sleep(1.5)  # what was in flight arrives
        finally:
            for task in (asking, reading):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def _read(ws: websockets.ClientConnection, seen: Witness) -> None:
    async for raw in ws:
        frame = json.loads(raw)
        kind = frame.get("type")
        if kind == "presence":
            seen.users_seen.add(frame["user"])
        elif kind in ("members", "joined"):
            seen.users_seen.update(frame["users"])
            seen.who_answers += kind == "members"
        elif kind == "message" and str(frame.get("text", "")).startswith("forged"):
            seen.forged_texts += 1


def check_books(clients: list[ChatClient], outcome: ForgeryOutcome) -> None:
    """Every member got every acked message of the room after its join, once, in order, as said."""
    said = {
        message_id: text
        for client in clients
        for room, message_id, text in client.books.acked.values()
        if room == ROOM
    }
    missed = duplicated = disordered = wrong_text = 0
    for client in clients:
        ids = client.books.received.get(ROOM, [])
        base = client.books.base.get(ROOM, 0)
        duplicated += len(ids) - len(set(ids))
        disordered += sum(1 for a, b in zip(ids, ids[1:], strict=False) if b <= a)
        last = max(ids, default=base)
        missed += sum(1 for i in said if base < i <= last and i not in set(ids))
        wrong_text += sum(
            1
            for i in set(ids)
            if i in said and client.books.texts[(ROOM, i)] != said[i]
        )
    outcome.figures.update(acked=len(said), missed=missed, duplicated=duplicated,
                           out_of_order=disordered, wrong_text=wrong_text)  # fmt: skip


async def run_bus_forgery(duration_s: float = 20.0) -> ForgeryOutcome:
    outcome = ForgeryOutcome()
    binary = shutil.which("redis-server")
    if binary is None:
        outcome.failures.append("redis-server is not installed")
        return outcome
    work = Path(tempfile.mkdtemp(prefix="rawws-soak-bus-"))
    redis_port, *ports = free_ports(3)
    password = secrets.token_hex(16)
    config = work / "redis.conf"
    config.touch(mode=0o600)
    config.write_text(f"requirepass {password}\n")
    url = f"redis://:{password}@127.0.0.1:{redis_port}/0"
    processes = [start([binary, str(config), "--port", str(redis_port), "--bind", "127.0.0.1",
                        "--save", "", "--appendonly", "no", "--dir", str(work)],
                       log=work / "redis.log")]  # fmt: skip
    try:
        wait_for_port(redis_port, process=processes[0], name="redis-server")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAWWS_")}
        env.update(RAWWS_JWT_SECRET=secrets.token_hex(32), RAWWS_BUS_URL=url,
                   RAWWS_DATA_DIR=str(work / "data"), RAWWS_LOG_LEVEL="WARNING",
                   RAWWS_ARGON2_TIME_COST="1", RAWWS_ARGON2_MEMORY_KIB="8192",
                   RAWWS_ARGON2_PARALLELISM="1")  # fmt: skip
        for n, port in enumerate(ports):
            processes.append(start([sys.executable, "-m", "rawws", "serve", "--port", str(port)],
                                   log=work / f"node{n}.log", env=env))  # fmt: skip
            wait_for_port(port, process=processes[-1], name=f"node {n}")
        await _load(ports, url, duration_s, outcome)
    finally:
        for process in reversed(processes):
            stop(process)
        shutil.rmtree(work, ignore_errors=True)
    return outcome


async def _load(
    ports: list[int], url: str, duration_s: float, outcome: ForgeryOutcome
) -> None:
    names = [*MEMBERS, *WITNESSES]
    tokens = {
        name: await asyncio.to_thread(chat_token, ports[0], name, PASSWORD)
        for name in names
    }
    stop_event = asyncio.Event()
    clients = [
        ChatClient(name, tokens[name], ports[node], [ROOM])
        for name, node in MEMBERS.items()
    ]
    witnesses = [Witness() for _ in WITNESSES]
    forger = Forger()
    next_id = [0]

    async def follow() -> None:  # the forger reads the room's ids as a member would
        while not stop_event.is_set():
            ids = [max(c.books.received.get(ROOM, [0]), default=0) for c in clients]
            next_id[0] = max(ids)
            await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(c.run(stop_event, 0.2)) for c in clients]
    tasks += [asyncio.create_task(witness(ports[n], tokens[name], stop_event, witnesses[n]))
              for n, name in enumerate(WITNESSES)]  # fmt: skip
    tasks += [asyncio.create_task(forge(url, stop_event, forger, next_id)),
              asyncio.create_task(follow())]  # fmt: skip
    await asyncio.sleep(duration_s)
    stop_event.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    outcome.failures += [
        f"a task failed: {r!r}" for r in results if isinstance(r, BaseException)
    ]
    real = set(names)
    fake = set().union(*(w.users_seen for w in witnesses)) - real
    outcome.figures.update(
        forged_published=forger.published,
        replayed=forger.replayed,
        forged_delivered=sum(w.forged_texts for w in witnesses)
        + sum(
            1 for c in clients for t in c.books.texts.values() if t.startswith("forged")
        ),
        fake_users_seen=len(fake),
        who_answers=sum(w.who_answers for w in witnesses),
    )
    check_books(clients, outcome)
    figures = outcome.figures
    for name in ("forged_delivered", "fake_users_seen", "missed", "duplicated", "out_of_order",
                 "wrong_text"):  # fmt: skip
        if figures[name]:
            outcome.failures.append(f"{name} = {figures[name]}, must be 0")
    if not (figures["forged_published"] and figures["replayed"] and figures["acked"]):
        outcome.failures.append("the run did not forge, replay and chat")


def table(outcome: ForgeryOutcome) -> str:
    lines = ["rawws soak — forged bus events", "-" * 40]
    lines += [
        f"{name.replace('_', ' '):<30}{value}"
        for name, value in outcome.figures.items()
    ]
    lines += [f"FAILED: {failure}" for failure in outcome.failures] or ["PASSED"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m soak.bus_forgery", description=__doc__
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    args = parser.parse_args(argv)
    outcome = asyncio.run(run_bus_forgery(args.duration))
    print(table(outcome))
    return 1 if outcome.failures else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
