"""Issue 22, item 9: a node's CPU per ``typing`` beside one message's fan-out, at 1,000 members,
and how many store writes 1,000 users' ``read`` frames cost.

    python -m bench.typing_cost [--members 1000] [--events 2000] [--rounds 5]

In process, on one ``ChatHandler`` over a fresh SQLite store, as the server drives it:
``members`` connections (one per user) join one public room; their peers take each
frame as a real connection's ``send_shared`` does, minus the socket write (a
message and a typing frame are both one frame shared by every receiver, so the
write per receiver is the same for both and left out of both). CPU is
``time.process_time`` (every thread of the process) over each measured stretch:

* **typing, sent here**: ``on_message`` of a ``typing`` frame (rate limit passed: the
  relay's clock is advanced between events), fanned out to the other members here
  and encoded for the bus;
* **typing, heard from the bus**: a ``Typing`` bus event, decoded and fanned out
  (what each other node pays);
* **message fan-out**: a message this node stored (``RoomFeed.stored_here``): encoded
  for the bus, ordered by the room's sequencer, framed once and delivered to every
  member. Storing is not included: a ``say`` costs that besides;
* **read**: every member sends ``read`` of the newest id, twice (the second is a
  no-op); then the writer's flush. Reports the store writes they cost.

Prints one line per figure (median of ``rounds``) and the ratio typing ÷ message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from rawws.chat.codec import Typing, encode_event
from rawws.chat.limits import ChatLimits
from rawws.chat.service import ChatHandler
from rawws.store import StoredMessage, open_store, sqlite_url

ROOM = "big"


class Peer:
    """A connection that takes frames as a real one queues them, without the socket."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.identity = None
        self.open = True
        self.backed_up = False
        self.received = 0

    def send_nowait(self, message: str) -> bool:
        self.received += 1
        return True

    def send_shared(self, text: str, frame: bytes) -> bool:
        self.received += 1
        return True

    async def wait_writable(self) -> None:
        return None

    def close(self, code: int, reason: str) -> None:
        self.open = False


async def settle(handler: ChatHandler) -> None:
    while True:
        await handler.writer.flush()
        pending = {t for t in handler._tasks if not t.done()}
        if not pending:
            return
        await asyncio.wait(pending)


async def measure(members: int, events: int, rounds: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as directory:
        store = await open_store(sqlite_url(Path(directory)))
        unlimited = ChatLimits(message_burst=10**9, messages_per_s=1e9)
        handler = ChatHandler(store, limits=unlimited)
        await handler.start()
        handler.markers.flush_s = 3600.0  # flushed by hand below
        ticks = [0.0]
        handler.typists.clock = lambda: ticks[0]
        peers = [Peer(f"user{n}") for n in range(members)]
        for peer in peers:
            handler.on_open(peer)  # type: ignore[arg-type]
            handler.on_message(peer, json.dumps({"type": "join", "room": ROOM}))  # type: ignore[arg-type]
        await settle(handler)
        typing = json.dumps({"type": "typing", "room": ROOM})
        heard = encode_event(Typing("other-node", ROOM, "user0"))
        next_id = await store.last_message_id(ROOM)
        writes = 0
        real_save = store.save_read_markers

        async def counted(marks: list[tuple[str, str, int]]) -> None:
            nonlocal writes
            writes += 1
            await real_save(marks)

        store.save_read_markers = counted  # type: ignore[method-assign]

        def add(name: str, seconds: float, count: int) -> None:
            figures.setdefault(name, []).append(seconds / count * 1e6)

        for _ in range(rounds):
            start = time.process_time()
            for n in range(events):
                ticks[0] += 2.0  # past the rate limit: every event is let through
                handler.on_message(peers[n % members], typing)  # type: ignore[arg-type]
            add("typing sent here (µs/event)", time.process_time() - start, events)
            start = time.process_time()
            for _ in range(events):
                handler.feed.receive_bytes(heard)
            add(
                "typing heard from the bus (µs/event)",
                time.process_time() - start,
                events,
            )
            start = time.process_time()
            for _ in range(events):
                next_id += 1
                handler.feed.stored_here(
                    StoredMessage(ROOM, next_id, "user0", "x" * 20, 0.0)
                )
            add("message fan-out (µs/message)", time.process_time() - start, events)
            start = time.process_time()
            for _ in range(2):
                for peer in peers:
                    handler.on_message(  # type: ignore[arg-type]
                        peer, json.dumps({"type": "read", "room": ROOM, "id": next_id})
                    )
            await handler.markers.flush()
            add(
                "read (µs/read, flush included)",
                time.process_time() - start,
                2 * members,
            )
        figures["store writes per round of reads"] = [writes / rounds]
        await handler.close()
        await store.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    figures = asyncio.run(measure(args.members, args.events, args.rounds))
    medians = {name: statistics.median(values) for name, values in figures.items()}
    for name, value in medians.items():
        rounds = ", ".join(f"{v:.1f}" for v in figures[name])
        print(f"{name}: {value:.1f}  (rounds: {rounds})")
    message = medians["message fan-out (µs/message)"]
    for name in ("typing sent here (µs/event)", "typing heard from the bus (µs/event)"):
        print(f"{name.split(' (')[0]} ÷ message fan-out: {medians[name] / message:.3f}")


if __name__ == "__main__":
    main()
