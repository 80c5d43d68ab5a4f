"""examples/ticker.py against a real `rawws serve` with a key made by `rawws api-key create`.

The ticker makes its feed room, publishes a bounded count of quotes and ends;
the room's history is every quote it printed, in order, marked ``app``. Run into
a feed room made before (409 ``room_exists`` is no error to it), its quotes reach
a member already in the room, live, in order. The member may only read: a
``say`` in a feed room is ``forbidden``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from rawws.api import ApiClient
from tests.api.support import create_api_key
from tests.support.chat_client import close_quietly, connect_chat, new_user
from tests.support.helpers import TIMEOUT_S
from tests.support.nodes import REPO_ROOT, serve_environment, start_node

TICKER = REPO_ROOT / "examples" / "ticker.py"
ROOM, LIVE = "stocks", "stocks-live"
APP = "ticker"
COUNT = 12


async def run_ticker(
    port: int, key: str, room: str, *args: str
) -> list[tuple[int, str]]:
    """The ticker to its end (the key in its environment): the (id, quote) of each line it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(TICKER),
        "--url", f"http://127.0.0.1:{port}",
        "--room", room,
        *args,
        env={**serve_environment(), "RAWWS_API_KEY": key},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), TIMEOUT_S * 3)
    assert (process.returncode, err.decode()) == (0, "")
    lines = out.decode().splitlines()
    printed = [(int(line.split(" ", 1)[0]), line.split(" ", 1)[1]) for line in lines]
    for _, quote in printed:
        symbol, price, change = quote.split(" ")
        assert symbol.isupper() and float(price) > 0 and change[0] in "+-"
    return printed


def received(frames: list[dict[str, object]]) -> list[tuple[object, object]]:
    for frame in frames:
        assert (frame["user"], frame["app"]) == (APP, True)
    return [(frame["id"], frame["text"]) for frame in frames]


async def test_the_ticker_feeds_every_quote_in_order_to_the_rooms_members(
    tmp_path: Path,
) -> None:
    env = {"RAWWS_DATA_DIR": str(tmp_path / "node" / "data")}
    node = await start_node(tmp_path / "node", env=env)
    watcher = None
    scopes = ("--scope", "publish", "--scope", "rooms", "--scope", "read")
    try:
        key = await create_api_key(APP, *scopes, env=env)
        async with ApiClient(f"http://127.0.0.1:{node.port}", key) as api:
            # a room the ticker makes itself: its history is every quote, in order
            alone = await run_ticker(node.port, key, ROOM, "--count", str(COUNT))
            assert len(alone) == COUNT
            history = await api.history(ROOM)
            assert received(history) == alone
            # a room made before (409 room_exists to the ticker), a member in it, live
            await api.rooms_create(LIVE, "feed")
        watcher = await connect_chat(node.port, await new_user(node.port, "wes"), "wes")
        joined = await watcher.join(LIVE)
        assert joined["kind"] == "feed"
        live = await run_ticker(
            node.port, key, LIVE, "--count", str(COUNT), "--rate", "20", "--seed", "7"
        )
        await watcher.wait_count("message", COUNT, room=LIVE)
        assert received(watcher.messages(LIVE)) == live

        await watcher.send(type="say", room=LIVE, text="buy!", ref="s")
        refused = await watcher.wait_frame("error", ref="s")
        assert refused["code"] == "forbidden"
    finally:
        if watcher is not None:
            await close_quietly(watcher)
        await node.stop()
