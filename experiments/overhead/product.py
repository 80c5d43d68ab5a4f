"""The overhead study on the product: one chat feed read over /ws, /sse, long /poll and short /poll.

    python -m experiments.overhead.product [--quick] [--duration 40] [--rate 2] [--poll-interval 1] [--delay-ms 50]

A real ``rawws serve`` (its own process, SQLite in a fresh data dir, the
load-friendly limits of ``experiments/perfkit.py``). One publisher, a
WebSocket, says chat lines of realistic length (20–200 characters) into room
``feed`` at Poisson times; ``--users`` readers of each transport read it:

* WebSocket: ``/ws``, the room joined with a ``join`` frame;
* SSE: ``GET /sse``, the room joined with ``POST /send``;
* long polling: ``GET /poll?session=…&ack=…&wait=25``, the next poll as soon as an answer is in;
* short polling: ``GET /poll?…&wait=0`` every ``--poll-interval`` seconds.

Every reader is a script's client: request line, ``Host`` and the bearer
token (a browser adds its own headers: the overhead study's Chromium rows
show how many). Bytes are counted by kind on the client's sockets
(``product_users.py``), TCP/IP from the kernel's segment counters at 52 bytes
a segment, latency from the publisher's write to the reader's read plus the
simulated one-way delay, as in the overhead study. The section "On the
product" of OVERHEAD.md and ``plots/product_*.png`` are written from the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

from bench.blocks import write_block
from experiments.overhead.common import REPO, STUDY_DIR
from experiments.overhead.markdown import write_section
from experiments.overhead.product_report import (
    analyse,
    plots,
    render_section,
    render_summary,
)
from experiments.overhead.product_users import (
    ROOM,
    Reader,
    SessionCounter,
    feed_text,
    poll_reader,
    sse_reader,
    ws_reader,
)
from experiments.overhead.simulate import summarise
from experiments.perfkit import (
    CHAT_ENV,
    PASSWORD,
    RawClient,
    ServerProcess,
    raise_fd_limit,
    rawws_command,
)
from testkit import chat_token

TRANSPORTS = ("WebSocket", "SSE", "long polling", "short polling")
LONGPOLL_WAIT_S = 25.0
PARAMS = {
    "default": {
        "duration": 40.0,
        "rate": 2.0,
        "interval": 1.0,
        "delay_ms": 50.0,
        "users": 10,
        "seed": 1,
    },
    "quick": {
        "duration": 3.0,
        "rate": 4.0,
        "interval": 0.5,
        "delay_ms": 50.0,
        "users": 2,
        "seed": 1,
    },
}


async def publish(
    port: int, token: str, *, duration: float, rate: float, seed: int
) -> list[int]:
    """Say the feed's lines at Poisson times; the publish time (ns, monotonic) of line i is at [i - 1]."""
    rng = random.Random(seed)
    joined = asyncio.Event()
    publisher = RawClient(
        lambda text, _at: joined.set() if '"type":"joined"' in text else None
    )
    await publisher.open(port, "/ws", token=token)
    publisher.send_json({"type": "join", "room": ROOM})
    await asyncio.wait_for(joined.wait(), 30)
    published: list[int] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + duration
    while True:
        await asyncio.sleep(rng.expovariate(rate))
        if loop.time() >= end:
            break
        published.append(time.monotonic_ns())
        publisher.send_json(
            {"type": "say", "room": ROOM, "text": feed_text(len(published), rng)}
        )
    await asyncio.sleep(0.2)
    publisher.close()
    return published


async def simulate(
    port: int, publisher_token: str, reader_token: str, params: dict
) -> dict:
    loop = asyncio.get_running_loop()
    rng = random.Random(params["seed"])
    delay, interval, users = (
        params["delay_ms"] / 1000,
        params["interval"],
        int(params["users"]),
    )
    setup_s = 20.0
    groups: dict[str, list[SessionCounter]] = {}
    readers: list[Reader] = []
    tasks = []
    for transport in TRANSPORTS:
        groups[transport] = []
        for _ in range(users):
            counter = SessionCounter(transport, "script")
            reader = Reader(
                counter, port, reader_token, delay=delay, end=loop.time() + 3600
            )
            groups[transport].append(counter)
            readers.append(reader)
            if transport == "WebSocket":
                job = ws_reader(reader)
            elif transport == "SSE":
                job = sse_reader(reader)
            elif transport == "long polling":
                job = poll_reader(
                    reader, interval=None, wait=LONGPOLL_WAIT_S, offset=0.0
                )
            else:
                job = poll_reader(
                    reader, interval=interval, wait=0.0, offset=rng.uniform(0, interval)
                )
            tasks.append(loop.create_task(job))
    all_joined = loop.create_task(
        asyncio.wait([loop.create_task(r.joined.wait()) for r in readers])
    )
    done, _ = await asyncio.wait(
        [all_joined, *tasks], timeout=setup_s, return_when=asyncio.FIRST_COMPLETED
    )
    if all_joined not in done:
        for task in tasks:
            task.cancel()
        errors = [repr(t.exception()) for t in done if t.exception()]
        joined = sum(r.joined.is_set() for r in readers)
        raise RuntimeError(
            f"{joined} of {len(readers)} readers joined in {setup_s:g} s: {errors[:3]}"
        )
    # readers read until the last line had one poll interval and both delays to arrive
    end = loop.time() + 1.0 + params["duration"] + interval + 4 * delay + 1.0
    for reader in readers:
        reader.end = end
    published = await publish(
        port,
        publisher_token,
        duration=params["duration"],
        rate=params["rate"],
        seed=params["seed"],
    )
    await asyncio.sleep(max(0.0, end - loop.time()))
    for task in tasks:
        task.cancel()  # a reader still waiting for a read (a long poll, a stream) ends here
    results = await asyncio.gather(*tasks, return_exceptions=True)
    out: dict = {
        "published": len(published),
        "errors": [
            repr(r)
            for r in results
            if isinstance(r, BaseException)
            and not isinstance(r, asyncio.CancelledError)
        ],
        "token_bytes": len(reader_token),
        "groups": [],
    }
    for transport, counters in groups.items():
        group = summarise(transport, "script", counters, published, delay)
        group["setup_bytes"] = group["bytes"].pop("setup", 0)
        group["setup_segments"] = sum(c.setup_segments for c in counters)
        out["groups"].append(group)
    return out


def run_study(
    *,
    quick: bool,
    plots_dir: Path,
    command: str,
    progress=None,
    **overrides: float | None,
) -> dict:
    params = dict(PARAMS["quick" if quick else "default"])
    params.update({k: v for k, v in overrides.items() if v is not None})
    raise_fd_limit()
    server = ServerProcess("product", rawws_command(), env=CHAT_ENV).start()
    try:
        publisher_token = chat_token(server.port, "publisher", PASSWORD)
        reader_token = chat_token(server.port, "reader", PASSWORD)
        if progress:
            progress(
                f"product study: {params['duration']:g} s feed at {params['rate']:g}/s, "
                f"{params['users']} readers × {len(TRANSPORTS)} transports, delay {params['delay_ms']:g} ms"
            )
        raw = asyncio.run(simulate(server.port, publisher_token, reader_token, params))
    finally:
        server.stop()
    study = {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "params": params,
        "raw": raw,
    }
    study["analysis"] = analyse(raw, params)
    plots_dir.mkdir(parents=True, exist_ok=True)
    plots(study, plots_dir)
    return study


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m experiments.overhead.product",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few seconds, tiny counts (smoke test)"
    )
    parser.add_argument("--duration", type=float, help="seconds of feed (default 40)")
    parser.add_argument(
        "--rate", type=float, help="mean messages per second (default 2)"
    )
    parser.add_argument(
        "--poll-interval",
        dest="interval",
        type=float,
        help="short-polling interval, s (default 1)",
    )
    parser.add_argument(
        "--delay-ms", type=float, help="simulated one-way delay, ms (default 50)"
    )
    parser.add_argument(
        "--users", type=int, help="readers of each transport (default 10)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=STUDY_DIR / "OVERHEAD.md",
        help="the page its section goes in",
    )
    parser.add_argument("--plots", type=Path, default=STUDY_DIR / "plots")
    parser.add_argument(
        "--results",
        type=Path,
        default=REPO / "bench" / "RESULTS.md",
        help="the page its summary block goes in",
    )
    parser.add_argument("--json", type=Path, help="also write the raw study here")
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="JSON",
        help="re-render from a study saved with --json",
    )
    args = parser.parse_args(argv)
    if args.from_json:
        study = json.loads(args.from_json.read_text())
        study["analysis"] = analyse(
            study["raw"], study["params"]
        )  # from the raw counts, by this code
        args.plots.mkdir(parents=True, exist_ok=True)
        plots(study, args.plots)
    else:
        study = run_study(
            quick=args.quick,
            plots_dir=args.plots,
            command="python -m experiments.overhead.product"
            + ("" if not argv else " " + " ".join(argv)),
            progress=lambda line: print(line, file=sys.stderr, flush=True),
            duration=args.duration,
            rate=args.rate,
            interval=args.interval,
            delay_ms=args.delay_ms,
            users=args.users,
        )
    write_section(args.out, render_section(study, args.out, args.plots))
    overhead_page = (
        os.path.relpath(args.out, args.results.parent)
        + "#on-the-product-ws-sse-and-poll-of-rawws-serve"
    )
    write_block(
        args.results,
        "transports-overhead",
        study["command"],
        render_summary(study, overhead_page),
    )
    if args.json:
        args.json.write_text(json.dumps(study, indent=1))
    print(
        f"wrote the section 'On the product' of {args.out} and {args.plots}/product_*.png",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
