"""Publish stock quotes into a feed room a few times a second, through the server API.

python examples/ticker.py --url http://127.0.0.1:8765 --room stocks [--count 20] [--rate 4]

The API key comes from --key or RAWWS_API_KEY (make one on the server's machine:
``rawws api-key create ticker --scope publish --scope rooms``). The feed room is
created first if it is missing. Each quote is a step of a random walk over a few
symbols, published with retries (one idempotency key per quote, so a retried quote
is shown once); each line printed is the id the server gave it and the quote.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import random
import sys
from collections.abc import Iterator

from rawws.api import ApiClient, ApiError, ApiUnreachable

SYMBOLS = {"ACME": 101.00, "GLOBEX": 47.50, "INITECH": 12.25, "UMBRELLA": 230.00}


def quotes(seed: int | None) -> Iterator[str]:
    """An endless walk: one symbol moves each step (a log-normal step of about 0.2 %)."""
    rng = random.Random(seed)
    prices = dict(SYMBOLS)
    while True:
        for symbol in SYMBOLS:
            before = prices[symbol]
            prices[symbol] = max(0.01, round(before * math.exp(rng.gauss(0, 0.002)), 2))
            yield f"{symbol} {prices[symbol]:.2f} {prices[symbol] - before:+.2f}"


async def ticker(
    url: str, key: str, room: str, count: int, rate: float, seed: int | None
) -> None:
    async with ApiClient(url, key) as api:
        try:
            await api.rooms_create(room, "feed")
        except ApiError as error:
            if error.code != "room_exists":
                raise
        walk = quotes(seed)
        for n in range(count) if count else itertools.count():
            text = next(walk)
            sent = await api.publish(room, text, retries=5)
            print(f"{sent.id} {text}", flush=True)
            if n + 1 != count:
                await asyncio.sleep(1 / rate)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="publish stock quotes into a feed room"
    )
    parser.add_argument(
        "--url", default="http://127.0.0.1:8765", help="the rawws server"
    )
    parser.add_argument(
        "--key",
        default=os.environ.get("RAWWS_API_KEY"),
        help="an API key (default: $RAWWS_API_KEY)",
    )
    parser.add_argument(
        "--room", default="stocks", help="the feed room (created if missing)"
    )
    parser.add_argument(
        "--count", type=int, default=0, help="stop after this many quotes (0: never)"
    )
    parser.add_argument("--rate", type=float, default=4.0, help="quotes a second")
    parser.add_argument("--seed", type=int, default=None, help="the random walk's seed")
    args = parser.parse_args()
    if not args.key:
        parser.error("an API key is needed: --key or RAWWS_API_KEY")
    if args.rate <= 0 or args.count < 0:
        parser.error("--rate must be above 0 and --count 0 or more")
    try:
        asyncio.run(
            ticker(args.url, args.key, args.room, args.count, args.rate, args.seed)
        )
    except KeyboardInterrupt:
        pass
    except (ApiError, ApiUnreachable) as error:
        sys.exit(f"ticker: {error}")


if __name__ == "__main__":
    main()
