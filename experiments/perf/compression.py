"""Compressed connections side by side: idle memory, ratio on chat JSON, chat fan-out CPU.

    python -m experiments.perf.compression [--quick] [--rounds 3] [--parts memory ratio fanout] [--base-tree DIR] [--json out.json]

``--base-tree DIR`` adds rawws run from an unpacked earlier commit (``testkit/base_tree.py``)
with its default compression, to show the change in the same run.

* memory: N connections to an echo endpoint, each offering permessage-deflate
  as browsers do (``permessage-deflate; client_max_window_bits``), each sending
  one compressed chat-sized message and reading its echo, then idle. Server
  RSS after minus before, ÷ N: rawws shared / dedicated / off against
  websockets (default compression: 12 window bits, memory level 5, a context
  per connection). Each measurement is a fresh server process; rounds rotate
  the order.
* ratio: 1,000 chat ``message`` events as the chat sends them, encoded in
  this process by each mode: bytes on the wire per message and encode CPU.
* fanout: the chat itself (``rawws serve``, SQLite): N members of one room,
  10 senders post their burst (200 messages), server CPU per delivery with
  members uncompressed, in shared compression and in dedicated compression.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Callable

from experiments.perfkit import (
    BROWSER_OFFER,
    CHAT_ENV,
    PASSWORD,
    RawClient,
    ServerProcess,
    cpu_seconds,
    median,
    open_many,
    raise_fd_limit,
    rawws_command,
    rss_kib,
)
from rawws.core.deflate import deflated_text_frame
from rawws.core.handshake import negotiate_deflate
from rawws.core.protocol import WebSocket
from testkit import chat_token

WORDS = (
    "the deploy is done",
    "anyone around?",
    "lunch at noon",
    "see the dev room",
    "ok",
    "thanks!",
    "reconnects with since=<last id>",
    "ship it",
    "what broke?",
    "the tests are green again",
    "👍",
)
USERS = ("alice", "bob", "carol", "dave", "erin")


def chat_events(count: int, seed: int = 7) -> list[str]:
    """``message`` events as the chat sends them (``rawws.chat.wire.message``)."""
    rng = random.Random(seed)
    events = []
    for index in range(count):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))
        event = {
            "type": "message",
            "room": "lobby",
            "id": 1000 + index,
            "user": rng.choice(USERS),
            "text": text,
            "ts": round(1_764_650_000 + index * 1.7, 3),
        }
        events.append(json.dumps(event, separators=(",", ":"), ensure_ascii=False))
    return events


# -- ratio ------------------------------------------------------------------------


def _connection_encoder(
    mode: str, bits: int, memory_level: int
) -> Callable[[str], bytes]:
    negotiated = negotiate_deflate([BROWSER_OFFER], 1 << 20, mode, bits, memory_level)
    assert negotiated is not None
    ws = WebSocket(client=False, extensions=[negotiated[0]])
    return ws.send


def ratio_table(events: list[str]) -> list[dict[str, object]]:
    plain = WebSocket(client=False).send
    encoders: list[tuple[str, Callable[[str], bytes]]] = [
        ("off (plain frames)", plain),
        ("shared, 12 bits", lambda text: deflated_text_frame(text, 12)),
        ("shared, 15 bits", lambda text: deflated_text_frame(text, 15)),
        ("dedicated, 12 bits, memLevel 5", _connection_encoder("dedicated", 12, 5)),
        ("dedicated, 15 bits, memLevel 8", _connection_encoder("dedicated", 15, 8)),
    ]
    rows = []
    base = sum(len(plain(text)) for text in events)
    for name, encode in encoders:
        start = time.process_time()
        wire = sum(len(encode(text)) for text in events)
        cpu = time.process_time() - start
        rows.append(
            {
                "mode": name,
                "bytes_per_message": wire / len(events),
                "vs_plain": wire / base,
                "encode_us": cpu / len(events) * 1e6,
            }
        )
    return rows


# -- memory -----------------------------------------------------------------------

MEMORY_SERVERS = {
    "rawws shared": rawws_command("--echo", "--compression", "shared"),
    "rawws dedicated": rawws_command("--echo", "--compression", "dedicated"),
    "rawws off": rawws_command("--echo", "--compression", "off"),
    "websockets": [
        sys.executable,
        "-m",
        "experiments.perf.websockets_deflate",
        "--port",
        "{port}",
    ],
}


async def _idle_connections(server: ServerProcess, count: int, message: str) -> float:
    echoed = 0
    done = asyncio.Event()

    def on_message(text: str, _: float) -> None:
        nonlocal echoed
        echoed += 1
        if echoed == count:
            done.set()

    warm = [
        RawClient() for _ in range(50)
    ]  # first-use allocations (imports, zlib tables) out of the figure
    await open_many(warm, server.port, "/echo", offer=BROWSER_OFFER)
    for client in warm:
        client.send_text(message, compress=True)
    await asyncio.sleep(0.5)
    for client in warm:
        client.close()
    await asyncio.sleep(0.5)
    before = rss_kib(server.pid)
    clients = [RawClient(on_message) for _ in range(count)]
    await open_many(clients, server.port, "/echo", offer=BROWSER_OFFER)
    assert all(client.compressed for client in clients) or "off" in server.name
    for client in clients:
        client.send_text(message, compress=True)
    await asyncio.wait_for(done.wait(), 60)
    await asyncio.sleep(1.0)
    after = rss_kib(server.pid)
    for client in clients:
        client.close()
    return (after - before) / count


def memory_rounds(rounds: int, count: int) -> dict[str, list[float]]:
    message = chat_events(1)[0]
    results: dict[str, list[float]] = {name: [] for name in MEMORY_SERVERS}
    names = list(MEMORY_SERVERS)
    for round_index in range(rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            server = ServerProcess(name, MEMORY_SERVERS[name], CHAT_ENV).start()
            try:
                results[name].append(
                    asyncio.run(_idle_connections(server, count, message))
                )
            finally:
                server.stop()
            print(
                f"  memory round {round_index + 1} {name}: {results[name][-1]:.1f} KiB",
                flush=True,
            )
    return results


# -- fan-out ----------------------------------------------------------------------

FANOUT_MODES = {  # name: (server flag, members offer deflate)
    "uncompressed members": ("shared", False),
    "shared compression": ("shared", True),
    "dedicated compression": ("dedicated", True),
}
SENDERS, BURST = 10, 20  # the chat's per-connection burst


def add_base_tree(tree: str) -> None:
    base = [sys.executable, "-m", "testkit.base_tree", tree]
    MEMORY_SERVERS["rawws@base"] = [*base, *rawws_command("--echo")[3:]]
    FANOUT_MODES["compressed members, rawws@base"] = ("base:" + tree, True)


def _server_command(flag: str) -> list[str]:
    if flag.startswith("base:"):
        return [
            sys.executable,
            "-m",
            "testkit.base_tree",
            flag[5:],
            *rawws_command()[3:],
        ]
    return rawws_command("--compression", flag)


async def _fanout(server: ServerProcess, members: int, offer: bool) -> float:
    token = chat_token(server.port, "bench", PASSWORD)
    counts = [0]

    def on_message(text: str, _: float) -> None:
        if text.startswith('{"type":"message"'):
            counts[0] += 1

    receivers = [RawClient(on_message) for _ in range(members)]
    await open_many(
        receivers,
        server.port,
        "/ws",
        token=token,
        offer=BROWSER_OFFER if offer else None,
    )
    senders = [RawClient() for _ in range(SENDERS)]
    await open_many(senders, server.port, "/ws", token=token)
    for client in receivers + senders:
        client.send_json({"type": "join", "room": "bench"})
    await asyncio.sleep(1.5)
    expected = SENDERS * BURST * members
    cpu0 = cpu_seconds(server.pid)
    for sender in senders:
        for index in range(BURST):
            sender.send_json(
                {"type": "say", "room": "bench", "text": chat_events(BURST)[index]}
            )
    deadline = time.monotonic() + 120
    while counts[0] < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{counts[0]} of {expected} deliveries")
        await asyncio.sleep(0.05)
    cpu = cpu_seconds(server.pid) - cpu0
    for client in receivers + senders:
        client.close()
    return cpu / expected * 1e6


def fanout_rounds(rounds: int, sizes: list[int]) -> dict[str, dict[int, list[float]]]:
    results: dict[str, dict[int, list[float]]] = {
        name: {size: [] for size in sizes} for name in FANOUT_MODES
    }
    names = list(FANOUT_MODES)
    for round_index in range(rounds):
        for size in sizes:
            order = (
                names[round_index % len(names) :] + names[: round_index % len(names)]
            )
            for name in order:
                flag, offer = FANOUT_MODES[name]
                server = ServerProcess(name, _server_command(flag), CHAT_ENV).start()
                try:
                    results[name][size].append(
                        asyncio.run(_fanout(server, size, offer))
                    )
                finally:
                    server.stop()
                print(
                    f"  fanout round {round_index + 1} {size} {name}: {results[name][size][-1]:.2f} µs",
                    flush=True,
                )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.perf.compression",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one round, fewer connections (a smoke run)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--members", type=int, nargs="+", default=[300, 1000])
    parser.add_argument("--parts", nargs="+", default=["ratio", "memory", "fanout"])
    parser.add_argument(
        "--base-tree",
        help="also run rawws from this unpacked source tree, as rawws@base",
    )
    parser.add_argument("--json", help="write the raw figures here")
    args = parser.parse_args(argv)
    if args.base_tree:
        add_base_tree(args.base_tree)
    if args.quick:
        args.rounds, args.connections, args.members = 1, 100, [100]
    raise_fd_limit()
    out: dict[str, object] = {"rounds": args.rounds, "connections": args.connections}
    if "ratio" in args.parts:
        rows = ratio_table(chat_events(1000))
        out["ratio"] = rows
        print(
            "| mode | bytes / message | vs plain | encode CPU µs / message |\n|---|---:|---:|---:|"
        )
        for row in rows:
            print(
                f"| {row['mode']} | {row['bytes_per_message']:.1f} | {row['vs_plain']:.2f} | {row['encode_us']:.1f} |"
            )
    if "memory" in args.parts:
        memory = memory_rounds(args.rounds, args.connections)
        out["memory"] = memory
        print(
            f"| server | KiB per idle compressed connection (median of {args.rounds}) | rounds |\n|---|---:|---|"
        )
        for name, values in memory.items():
            print(
                f"| {name} | {median(values):.1f} | {', '.join(f'{v:.1f}' for v in values)} |"
            )
    if "fanout" in args.parts:
        fanout = fanout_rounds(args.rounds, args.members)
        out["fanout"] = {
            name: {str(k): v for k, v in sizes.items()}
            for name, sizes in fanout.items()
        }
        print(
            "| members | mode | server CPU µs / delivery (median) | rounds |\n|---:|---|---:|---|"
        )
        for name, sizes in fanout.items():
            for size, values in sizes.items():
                print(
                    f"| {size} | {name} | {median(values):.2f} | {', '.join(f'{v:.2f}' for v in values)} |"
                )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(out, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
