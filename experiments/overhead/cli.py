"""``python -m experiments.overhead [serve]``: the study alone (→ OVERHEAD.md), or its server."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import experiments.overhead
from experiments.overhead.common import HOST, STUDY_DIR
from experiments.overhead.markdown import write_markdown
from experiments.overhead.plots import plots
from experiments.overhead.server import serve_main
from experiments.overhead.study import run_study


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        parser = argparse.ArgumentParser(
            prog="python -m experiments.overhead serve",
            description="the study's server",
        )
        parser.add_argument("--host", default=HOST)
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--ping-interval", type=float, default=20.0)
        return serve_main(parser.parse_args(argv[1:]))
    parser = argparse.ArgumentParser(
        prog="python -m experiments.overhead",
        description=experiments.overhead.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few seconds, tiny counts (smoke test)"
    )
    parser.add_argument("--duration", type=float, help="seconds of feed (default 40)")
    parser.add_argument(
        "--rate",
        type=float,
        help="mean messages per second (default 1, as websocket.org's example)",
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
    parser.add_argument("--users", type=int, help="users of each kind (default 10)")
    parser.add_argument(
        "--ping-interval",
        type=float,
        help="the server's keepalive ping interval, s (default 20)",
    )
    parser.add_argument("--out", type=Path, default=STUDY_DIR / "OVERHEAD.md")
    parser.add_argument("--plots", type=Path, default=STUDY_DIR / "plots")
    parser.add_argument("--json", type=Path, help="also write the raw study here")
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="JSON",
        help="re-render the write-up and plots from a study saved with --json, run nothing",
    )
    args = parser.parse_args(argv)
    if args.from_json:
        study = json.loads(args.from_json.read_text())
        args.plots.mkdir(parents=True, exist_ok=True)
        plots(study, args.plots)
    else:
        command = "python -m experiments.overhead" + (
            "" if not argv else " " + " ".join(argv)
        )
        study = run_study(
            quick=args.quick,
            plots_dir=args.plots,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
            command=command,
            duration=args.duration,
            rate=args.rate,
            interval=args.interval,
            delay_ms=args.delay_ms,
            users=args.users,
            ping_interval=args.ping_interval,
        )
    write_markdown(study, args.out, args.plots)
    if args.json:
        args.json.write_text(json.dumps(study, indent=1))
    print(f"wrote {args.out} and {args.plots}/overhead_*.png", file=sys.stderr)
    return 0
