"""`python -m soak [--profile short|long] [--db URL] [--duration S] [--json FILE]`: run and print one table."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys

from soak.profiles import PROFILES
from soak.run import run, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="short")
    parser.add_argument(
        "--db",
        help="postgresql+asyncpg://… to run on PostgreSQL (adds the outage phase)",
    )
    parser.add_argument(
        "--duration", type=float, help="seconds of load (default: the profile's)"
    )
    parser.add_argument(
        "--clients", type=int, help="chatting clients (default: the profile's)"
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    if args.duration:
        profile = dataclasses.replace(profile, duration_s=args.duration)
    if args.clients:
        profile = dataclasses.replace(profile, clients=args.clients)
    outcome = asyncio.run(run(profile, args.db))
    print(table(outcome))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(
                {"figures": outcome.figures, "failures": outcome.failures},
                file,
                indent=2,
            )
    return 0 if not outcome.failures else 1


if __name__ == "__main__":
    sys.exit(main())
