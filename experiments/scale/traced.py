"""What one chat member holds in the server, by allocation site: ``rawws serve`` under tracemalloc.

    python -m experiments.scale.traced --members 1000,3000 [--frames 8] [--top 25] [--no-trace]

The server runs in this module's ``serve`` mode: tracemalloc started once
rawws is imported (a traced start-up takes minutes), and a snapshot dumped on every SIGUSR1 (after a
``gc.collect()``). The members are the scale study's (``experiments.scale.members``:
signed in, joined to one room). A snapshot is taken once each count of
``--members`` has joined; the difference between the first and the last,
÷ the members added, is what a member costs, by traceback (the largest sites
printed) and in all. Taking the difference of two counts leaves out what the
first member alone costs (imports, the room itself). ``--no-trace`` measures
the server's RSS per member between the same two counts instead, without
tracemalloc's own overhead.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

SNAPSHOT_ENV = "TRACED_SNAPSHOT"


def serve(argv: list[str], frames: int) -> int:
    """``rawws serve argv`` under tracemalloc; SIGUSR1 writes a snapshot where ``SNAPSHOT_ENV`` says."""
    from rawws.cli import main  # imported untraced: a traced start-up takes minutes

    tracemalloc.start(frames)
    target = os.environ[SNAPSHOT_ENV]

    def dump(signum: int, frame: object) -> None:
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
        snapshot.dump(target + ".part")
        os.replace(target + ".part", target)

    signal.signal(signal.SIGUSR1, dump)
    return main(["serve", *argv])


def _snapshot(pid: int, path: Path) -> tracemalloc.Snapshot:
    path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 120
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit("no snapshot came")
        time.sleep(0.2)
    return tracemalloc.Snapshot.load(str(path)).filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )


def _print_diff(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, added: int, top: int
) -> None:
    total = sum(s.size for s in after.statistics("filename")) - sum(
        s.size for s in before.statistics("filename")
    )
    print(f"traced per member: {total / added:.0f} B ({added} members added)")
    for key, depth in (("lineno", 1), ("traceback", 8)):
        print(f"\n-- largest per member by {key} --")
        for stat in after.compare_to(before, key)[:top]:
            per = stat.size_diff / added
            if abs(per) < 8:
                continue
            count = stat.count_diff / added
            frames = list(reversed(stat.traceback))  # the allocation first
            print(f"{per:8.1f} B {count:6.2f} blocks  {frames[0]}")
            for frame in frames[1:depth]:
                print(f"{'':28}{frame}")


def study(counts: list[int], frames: int, top: int, trace: bool) -> None:
    from experiments.perfkit import PASSWORD
    from experiments.scale.room import Load, Node
    from testkit import chat_token

    directory = Path(tempfile.mkdtemp(prefix="rawws-traced-"))
    snapshot_path = directory / "snapshot"
    node = Node(1, module="experiments.scale.traced" if trace else "rawws")
    os.environ[SNAPSHOT_ENV] = str(snapshot_path)
    os.environ["TRACED_FRAMES"] = str(frames)
    node.start()
    loads: list[Load] = []
    try:
        assert node.process is not None
        token = chat_token(node.port, "bench", PASSWORD)
        taken: list[tuple[int, tracemalloc.Snapshot | None, int]] = []
        joined = 0
        for count in counts:
            load = Load(node.port, token, count - joined, per_process=count)
            loads.append(load)
            joined += load.wait_ready()
            time.sleep(2.0)  # the joins' own traffic gone
            snap = _snapshot(node.process.pid, snapshot_path) if trace else None
            taken.append((joined, snap, node.rss_kib()))
            print(f"{joined} members joined, server RSS {taken[-1][2]} KiB", flush=True)
        (first, before, rss0), (last, after, rss1) = taken[0], taken[-1]
        print(f"RSS per member: {(rss1 - rss0) * 1024 / (last - first):.0f} B")
        if before is not None and after is not None:
            _print_diff(before, after, last - first, top)
    finally:
        for load in loads:
            load.kill()
        node.stop()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return serve(argv[1:], int(os.environ.get("TRACED_FRAMES", "8")))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", default="1000,3000")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-trace", action="store_true")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.members.split(",")]
    study(counts, args.frames, args.top, not args.no_trace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
