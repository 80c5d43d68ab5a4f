"""The chat's hot path against an earlier commit: server CPU per `say` and per fan-out delivery.

    python -m bench.hot_path --base 9307fd8 [--rounds 7] [--out bench/HOT_PATH.md]
    python -m bench.hot_path --base-tree DIR        # an unpacked tree instead of a commit
    python -m bench.hot_path --base HEAD --quick    # smoke run: tiny counts, one round

Issue 21 asks that the authorization check every command now passes
(``rawws/chat/access.py``) cost the hot path no more than 5 %: this measures
the code before it and the code now *in the same run*, side by side, because on
a shared 2-core machine only a comparison made at the same moment means
anything. Each round starts one fresh ``rawws serve`` per tree (fresh data dir,
alternating which goes first) and measures, from ``/proc/<pid>/stat``
(utime + stime, every thread of the server):

* **per say**: one connection in a room with no other member sends N `say`
  frames, a window at a time, and waits for every `ack`; CPU ÷ N. It covers
  parsing, the authorization, storing (batched commits), the ack and the one
  delivery back to the sender.
* **per delivery**: R receivers and a few senders in one room; the senders
  send M messages in bursts, each burst awaited on every receiver; CPU ÷ (M × R).

Both trees are run the same way, through ``testkit.base_tree`` (the current
tree is the repository's root): only the ``rawws`` package differs. The base
tree gets this tree's compiled masking extension when its ``_mask.c`` is the
same, so both unmask alike; the report says whether it did. The chat's limits
are raised with ``serve`` flags (one load client is every user); the load is
paced by windows well below the server's read budget anyway.

The clients are raw sockets that count marks in the byte stream, so a few
hundred of them cost the load client little. Writes the report (``--out``)
and the raw figures beside it (``hot_path.json``, not committed).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import filecmp
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import testkit
from testkit import chat_token, masked_frame

REPO = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
PASSWORD = "bench password 1"
ROOM = "hot"
SOLO_ROOM = "solo"
SAY = {"type": "say", "room": ROOM, "text": "x" * 20}

#: One load client is every user and every connection: the limits that protect a service from one
#: client are lifted, and argon2 made cheap (logging in is not what is measured).
SERVE_FLAGS = (
    "--log-level=WARNING",
    "--chat-messages-per-second=100000",
    "--chat-message-burst=100000",
    "--websockets-per-user=100000",
    "--websockets-per-address=100000",
    "--logins-per-minute-per-user=100000",
    "--logins-per-minute-per-address=100000",
    "--registrations-per-hour-per-address=100000",
    "--argon2-time-cost=1",
    "--argon2-memory-kib=8192",
    "--argon2-parallelism=1",
)

PROFILES = {  # says, say window, receivers, senders, messages, burst, warm-up says, rounds
    "full": {"says": 15000, "window": 50, "receivers": 500, "senders": 2,
             "messages": 1500, "burst": 50, "warmup": 500, "rounds": 7},
    "quick": {"says": 100, "window": 20, "receivers": 10, "senders": 2,
              "messages": 40, "burst": 20, "warmup": 20, "rounds": 1},
}  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), in seconds; 10 ms ticks."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


# -- the trees ------------------------------------------------------------------------------


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.strip()


def materialise(rev: str, into: Path) -> Path:
    """``git archive REV`` unpacked into ``into``: a plain tree, no worktree left registered."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def share_mask_extension(base: Path) -> str:
    """Copy this tree's compiled ``_mask`` into ``base`` when both have the same ``_mask.c``.

    Without it the base would unmask in pure Python and look slower for a
    reason that has nothing to do with the change measured. Returns what was
    done, for the report.
    """
    here, there = REPO / "rawws/core", base / "rawws/core"
    built = sorted(here.glob("_mask*.so"))
    if not built:
        return "no compiled `_mask` in this tree: both unmask in pure Python"
    if not (there / "_mask.c").exists() or not filecmp.cmp(
        here / "_mask.c", there / "_mask.c", shallow=False
    ):
        return (
            "the base's `_mask.c` differs: it unmasks with its own code (pure Python)"
        )
    for library in built:
        shutil.copy2(library, there / library.name)
    return f"same `_mask.c`: this tree's `{built[0].name}` copied into the base"


def serve_command(tree: Path, port: int, data_dir: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "testkit.base_tree",
        str(tree),
        "serve",
        f"--port={port}",
        f"--data-dir={data_dir}",
        *SERVE_FLAGS,
    ]


# -- the client -------------------------------------------------------------------------------


class Peer:
    """A raw ``/ws`` connection that counts ``message``, ``ack`` and ``joined`` frames it is sent.

    Counting marks in the byte stream (with a tail, for a mark split over two
    reads) instead of parsing frames keeps the load client cheap.
    """

    MARKS = {"message": b'"type":"message"', "ack": b'"type":"ack"',
             "joined": b'"type":"joined"'}  # fmt: skip

    def __init__(self) -> None:
        self.counts = dict.fromkeys(self.MARKS, 0)
        self._tail = b""
        self.writer: asyncio.StreamWriter | None = None
        self.changed = asyncio.Event()

    async def open(self, port: int, token: str, room: str) -> None:
        reader, writer = await asyncio.open_connection(testkit.LOOPBACK, port)
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
        asyncio.get_running_loop().create_task(self._read(reader))
        self.send(
            masked_frame(0x1, json.dumps({"type": "join", "room": room}).encode())
        )
        await self.wait("joined", 1)

    def send(self, frames: bytes) -> None:
        assert self.writer is not None
        self.writer.write(frames)

    async def wait(self, kind: str, target: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.counts[kind] < target:
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.counts[kind]} of {target} {kind} frames")
            await asyncio.wait_for(self.changed.wait(), remaining)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(262144):
            window = self._tail + data
            for kind, mark in self.MARKS.items():
                self.counts[kind] += window.count(mark)
            self._tail = window[
                -15:
            ]  # shorter than the shortest mark: none counted twice
            self.changed.set()


async def per_say(port: int, pid: int, token: str, profile: dict[str, int]) -> float:
    """Server CPU µs per `say` to a room with no other member, every ack awaited."""
    sender = Peer()
    await sender.open(port, token, SOLO_ROOM)
    window = profile["window"]
    frame = masked_frame(0x1, json.dumps({**SAY, "room": SOLO_ROOM}).encode())

    async def send(count: int) -> None:
        sent = sender.counts["ack"]
        for first in range(0, count, window):
            batch = min(window, count - first)
            sender.send(frame * batch)
            await sender.wait("ack", sent + first + batch)

    await send(
        profile["warmup"]
    )  # first-time costs (caches, the store's statements) left out
    before = cpu_seconds(pid)
    await send(profile["says"])
    cpu = cpu_seconds(pid) - before
    sender.close()
    return cpu / profile["says"] * 1e6


async def per_delivery(
    port: int, pid: int, token: str, profile: dict[str, int]
) -> float:
    """Server CPU µs per message delivered to a receiver, bursts awaited on every receiver."""
    receivers = [Peer() for _ in range(profile["receivers"])]
    for first in range(0, len(receivers), 50):
        await asyncio.gather(
            *(peer.open(port, token, ROOM) for peer in receivers[first : first + 50])
        )
    senders = [Peer() for _ in range(profile["senders"])]
    await asyncio.gather(*(sender.open(port, token, ROOM) for sender in senders))
    frame = masked_frame(0x1, json.dumps(SAY).encode())
    delivered = 0

    async def send(count: int) -> None:
        nonlocal delivered
        for first in range(0, count, profile["burst"]):
            burst = min(profile["burst"], count - first)
            for index in range(burst):
                senders[index % len(senders)].send(frame)
            delivered += burst
            for peer in receivers:
                await peer.wait("message", delivered)

    await send(profile["burst"])  # warm-up
    before = cpu_seconds(pid)
    await send(profile["messages"])
    cpu = cpu_seconds(pid) - before
    for peer in receivers + senders:
        peer.close()
    return cpu / (profile["messages"] * len(receivers)) * 1e6


def measure(tree: Path, profile: dict[str, int]) -> dict[str, float]:
    """One fresh server from ``tree``: both figures."""
    data_dir = tempfile.mkdtemp(prefix="rawws-hot-path-")
    port = testkit.free_port()
    server = testkit.start(serve_command(tree, port, data_dir), cwd=REPO)
    try:
        testkit.wait_for_port(port, process=server, name=f"rawws from {tree}")
        token = chat_token(port, "bench", PASSWORD)
        say = asyncio.run(per_say(port, server.pid, token, profile))
        delivery = asyncio.run(per_delivery(port, server.pid, token, profile))
        return {"us_per_say": say, "us_per_delivery": delivery}
    finally:
        testkit.stop(server, grace=20)
        shutil.rmtree(data_dir, ignore_errors=True)


# -- the run and its report -------------------------------------------------------------------

FIGURES = {
    "us_per_say": "server CPU per `say` (µs)",
    "us_per_delivery": "server CPU per fan-out delivery (µs)",
}


def run(
    base: Path, profile: dict[str, int], rounds: int
) -> dict[str, list[dict[str, float]]]:
    """Interleaved rounds: round r starts with the base when r is even, with the new tree when odd."""
    trees = {"base": base, "new": REPO}
    results: dict[str, list[dict[str, float]]] = {"base": [], "new": []}
    for index in range(rounds):
        order = ["base", "new"] if index % 2 == 0 else ["new", "base"]
        for name in order:
            figures = measure(trees[name], profile)
            results[name].append(figures)
            print(
                f"round {index + 1}/{rounds} {name}: "
                + ", ".join(f"{key} {value:.2f}" for key, value in figures.items()),
                file=sys.stderr,
                flush=True,
            )
    return results


def summarise(
    results: dict[str, list[dict[str, float]]],
) -> dict[str, dict[str, object]]:
    """Per figure: each side's median and per-round values, and new ÷ base per round and median."""
    summary: dict[str, dict[str, object]] = {}
    for key in FIGURES:
        base = [figures[key] for figures in results["base"]]
        new = [figures[key] for figures in results["new"]]
        # a quick run's load can round to 0 ticks: no ratio then, rather than a division error
        ratios = [n / b if b else float("nan") for n, b in zip(new, base, strict=True)]
        summary[key] = {
            "base": base,
            "new": new,
            "ratios": ratios,
            "base_median": statistics.median(base),
            "new_median": statistics.median(new),
            "ratio_median": statistics.median(ratios),
            # the middle half of the per-round ratios: how far one round's noise reaches
            "ratio_quartiles": statistics.quantiles(ratios, n=4)
            if len(ratios) > 1
            else ratios * 3,
        }
    return summary


def render(meta: dict[str, object], summary: dict[str, dict[str, object]]) -> str:
    profile = meta["profile"]
    assert isinstance(profile, dict)
    lines = [
        "# The chat's hot path, before and after",
        "",
        f"**Command:** `{meta['command']}`  ",
        f"**Date:** {meta['date']}  ",
        f"**Base:** `{meta['base']}`; **new:** `{meta['new']}`  ",
        f"**Rounds:** {meta['rounds']}, interleaved (the first tree alternates); "
        "a fresh server per tree and round  ",
        f"**Masking:** {meta['mask']}  ",
        f"**Load:** {profile['says']} `say` to a room with no other member, "
        f"{profile['window']} at a time, every ack awaited; fan-out: "
        f"{profile['messages']} messages from {profile['senders']} senders "
        f"to {profile['receivers']} receivers, bursts of {profile['burst']} "
        "each awaited on every receiver",
        "",
        "Server CPU is utime + stime of the server process from `/proc/<pid>/stat` "
        "(10 ms ticks), over the measured load only. The ratio is new ÷ base, taken "
        "per round (the two servers of a round ran one after the other) before the "
        "median; under 1.05 is within issue 21's 5 %.",
        "",
        "| figure | base (median) | new (median) | new ÷ base (median) | its quartiles | per-round new ÷ base |",
        "|---|---|---|---|---|---|",
    ]
    for key, title in FIGURES.items():
        row = summary[key]
        ratios, quartiles = row["ratios"], row["ratio_quartiles"]
        assert isinstance(ratios, list) and isinstance(quartiles, list)
        lines.append(
            f"| {title} | {row['base_median']:.2f} | {row['new_median']:.2f} "
            f"| {row['ratio_median']:.3f} | {quartiles[0]:.3f}–{quartiles[2]:.3f} "
            f"| {', '.join(f'{r:.3f}' for r in ratios)} |"
        )
    lines += ["", "Per round (µs):", "", "| figure | tree | " + " | ".join(
        f"r{i + 1}" for i in range(int(str(meta["rounds"])))
    ) + " |", "|---|---|" + "---|" * int(str(meta["rounds"]))]  # fmt: skip
    for key, title in FIGURES.items():
        for side in ("base", "new"):
            values = summary[key][side]
            assert isinstance(values, list)
            lines.append(
                f"| {title} | {side} | " + " | ".join(f"{v:.2f}" for v in values) + " |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.hot_path", description=__doc__.split("\n")[0]
    )
    where = parser.add_mutually_exclusive_group(
        required="--report-only" not in (argv or sys.argv)
    )
    where.add_argument("--base", metavar="REV", help="the commit to compare with")
    where.add_argument("--base-tree", metavar="DIR", type=Path, help="an unpacked tree")
    parser.add_argument("--quick", action="store_true", help="tiny counts, one round")
    parser.add_argument("--rounds", type=int, help="rounds (default 7; 1 with --quick)")
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench/HOT_PATH.md", help="the report"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="re-render --out from the hot_path.json beside it (no measuring)",
    )
    args = parser.parse_args(argv)
    raw = args.out.with_name("hot_path.json")
    if args.report_only:
        saved = json.loads(raw.read_text())
        meta = {
            key: saved[key]
            for key in ("command", "date", "base", "new", "rounds", "mask", "profile")
        }
        args.out.write_text(render(meta, summarise(saved["results"])))
        return 0
    profile = dict(PROFILES["quick" if args.quick else "full"])
    rounds = args.rounds or profile.pop("rounds")
    profile.pop("rounds", None)
    with tempfile.TemporaryDirectory(prefix="rawws-base-") as scratch:
        if args.base_tree is not None:
            base_tree, base_name = args.base_tree.resolve(), str(args.base_tree)
        else:
            base_tree = materialise(args.base, Path(scratch) / "tree")
            base_name = git("rev-parse", "--short", args.base)
            base_name += (
                f" ({args.base})" if not base_name.startswith(args.base) else ""
            )
        mask = share_mask_extension(base_tree)
        print(f"base {base_name}: {mask}", file=sys.stderr, flush=True)
        results = run(base_tree, profile, rounds)
    dirty = " + uncommitted changes" if git("status", "--porcelain", "rawws") else ""
    meta: dict[str, object] = {
        "command": "python -m bench.hot_path "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "base": base_name,
        "new": f"{git('rev-parse', '--short', 'HEAD')}{dirty}",
        "rounds": rounds,
        "mask": mask,
        "profile": profile,
    }
    summary = summarise(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(meta, summary))
    raw.write_text(
        json.dumps({**meta, "results": results, "summary": summary}, indent=1)
    )
    print(f"wrote {args.out} and {raw}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
