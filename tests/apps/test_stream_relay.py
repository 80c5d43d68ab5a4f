"""The live side of streamed messages: the ``Chunk`` bus event, and the relay's ordering rules
across two in-process nodes on one real store and a bus that loses and reorders events.

The property: whatever the bus drops or reorders and whenever members join, every
member's ``stream`` frames build a preview that only ever follows on (a ``whole``
frame, or the next chunk: never a chunk twice, never one past a gap) and is a prefix of
the final message, which each member gets once, after every ``stream`` frame of it.
With a bus that loses nothing and delivers every chunk before the finish (in any
order), a member who got any frame of it saw the whole text.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawws.chat.codec import Chunk, decode_event, encode_event
from rawws.chat.service import ChatHandler
from rawws.chat.wire import MAX_TEXT_CHARS
from tests.apps.test_streams import text_seen
from tests.chat.test_doors import opened, settle
from tests.chat.test_moderation_stream import LossyWire
from tests.chat.test_service import UNLIMITED, FakePeer

ROOM = "plaza"

names = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20
)
CHUNKS = st.builds(
    Chunk,
    node=names,
    room=st.text("abcdefgh-", min_size=1, max_size=32),
    stream=st.text("abcdefXYZ_-0123", min_size=1, max_size=32),
    seq=st.integers(1, MAX_TEXT_CHARS),
    user=st.text("abcdef", min_size=1, max_size=32),
    text=st.text(min_size=1, max_size=200).filter(
        lambda t: all(not 0xD800 <= ord(c) <= 0xDFFF for c in t)
    ),
)


@given(CHUNKS)
def test_a_chunk_event_round_trips(chunk: Chunk) -> None:
    assert decode_event(encode_event(chunk)) == chunk


GOOD = {"v": 1, "n": "n1", "k": "c", "r": "plaza", "x": "s1", "i": 1, "u": "app"}
GOOD["t"] = "tok"
BAD_VALUES = {
    "r": st.one_of(st.just(""), st.just("x" * 33), st.integers(), st.none()),
    "x": st.one_of(st.just(""), st.just("s" * 33), st.integers(), st.none()),
    "i": st.one_of(
        st.integers(max_value=0),
        st.integers(min_value=MAX_TEXT_CHARS + 1),
        st.booleans(),
        st.floats(),
        st.text(max_size=3),
        st.none(),
    ),
    "u": st.one_of(st.just(""), st.just("u" * 65), st.integers(), st.none()),
    "t": st.one_of(st.just(""), st.just("t" * (MAX_TEXT_CHARS + 1)), st.integers()),
}


@given(
    st.sampled_from(sorted(BAD_VALUES)).flatmap(
        lambda k: st.tuples(st.just(k), BAD_VALUES[k])
    ),
    st.booleans(),
)
def test_a_malformed_chunk_event_is_refused(
    bad: tuple[str, object], drop: bool
) -> None:
    field, value = bad
    body = dict(GOOD)
    if drop:
        del body[field]
    else:
        body[field] = value
    assert decode_event(json.dumps(body)) is None
    assert decode_event(json.dumps(GOOD)) is not None


# -- two nodes, one store, a lossy bus ------------------------------------------------

OPS = st.lists(
    st.sampled_from(("append", "append", "append", "join", "deliver", "turn")),
    min_size=1,
    max_size=30,
)


async def run_stream(
    tmp: Path, ops: list[str], drop: float, seed: int
) -> tuple[list[FakePeer], str]:
    store = await opened(tmp)
    wire = LossyWire(random.Random(seed), drop=drop)
    a, b = (
        ChatHandler(store, bus=wire.endpoint(n), node=n, limits=UNLIMITED)  # type: ignore[arg-type]
        for n in ("a", "b")
    )
    for handler in (a, b):
        await handler.start()
    peers: list[FakePeer] = []
    try:
        first = FakePeer("ann")  # the room exists, with a member on node a
        a.on_open(first)
        a.on_message(first, json.dumps({"type": "join", "room": ROOM}))
        await settle(a)
        peers.append(first)
        member = FakePeer("bob")  # bob is a member from before (then gone from node b)
        b.on_open(member)
        b.on_message(member, json.dumps({"type": "join", "room": ROOM}))
        await settle(b)
        await asyncio.gather(*list(b.streams.tasks))
        b.on_close(member, 1000)
        stream = await store.open_stream(ROOM, "oracle", time.time())
        assert stream is not None
        seq = 0
        for op in ops:
            if op == "append":
                seq += 1
                state = await store.append_stream(
                    stream, "oracle", f"<{seq}>", MAX_TEXT_CHARS, time.time()
                )
                a.streams.chunk_here(ROOM, stream, state.chunks, "oracle", f"<{seq}>")
            elif op == "join":
                peer = FakePeer("bob")
                b.on_open(peer)
                b.on_message(
                    peer, json.dumps({"type": "join", "room": ROOM, "since": 0})
                )
                peers.append(peer)
            elif op == "deliver":
                wire.deliver_some()
            else:
                await asyncio.sleep(0)
        if (
            drop == 0.0
        ):  # lossless: every chunk arrives (in any order) before the finish
            while wire.pending:
                wire.deliver_some()
            await asyncio.sleep(0)
            await asyncio.gather(*list(b.streams.tasks))
        finished = await store.finish_stream(stream, "oracle", time.time())
        assert finished.message is not None
        a.feed.stored_here(finished.message)
        for _ in range(
            3
        ):  # what the bus kept arrives; the heartbeat's repair does the rest
            wire.deliver_some()
            wire.drop = 0.0
            a.feed._beat()
            while wire.pending:
                wire.deliver_some()
            for handler in (a, b):
                b.feed._beat()
                await settle(handler)
                await asyncio.gather(*list(handler.streams.tasks))
                await asyncio.gather(*list(handler.feed._fetching.values()))
        return peers, stream
    finally:
        for handler in (a, b):
            await handler.close()
        await store.close()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=OPS, drop=st.sampled_from((0.0, 0.3)), seed=st.integers(0, 2**16))
def test_members_see_each_chunk_once_in_order_then_the_message_once(
    tmp_path_factory: object, ops: list[str], drop: float, seed: int
) -> None:
    tmp = tmp_path_factory.mktemp("relay")  # type: ignore[attr-defined]
    peers, stream = asyncio.run(run_stream(tmp, ops, drop, seed))
    whole_text = "".join(f"<{i}>" for i in range(1, ops.count("append") + 1))
    for peer in peers:
        frames = [f for f in peer.frames if f.get("stream") == stream]
        finals = [f for f in frames if f["type"] == "message"]
        assert len(finals) == 1, (peer.user, frames)
        assert finals[0]["text"] == whole_text
        assert frames[-1] is finals[0], frames  # nothing of it after its message
        chunks = [f for f in frames if f["type"] == "stream"]
        seen = text_seen(chunks)
        assert whole_text.startswith(seen), (seen, whole_text)
        if drop == 0.0 and chunks:
            assert seen == whole_text, (peer.user, chunks)


async def test_a_node_that_missed_chunks_reads_the_stream_again(tmp_path: Path) -> None:
    """Chunk 2 is lost on the way to node b: chunk 3 reveals the gap; b's members get the
    text so far in one ``whole`` frame, then chunk 4 as usual."""
    store = await opened(tmp_path)
    wire = LossyWire(random.Random(0), drop=0.0)
    a, b = (
        ChatHandler(store, bus=wire.endpoint(n), node=n, limits=UNLIMITED)  # type: ignore[arg-type]
        for n in ("a", "b")
    )
    for handler in (a, b):
        await handler.start()
    try:
        bob = FakePeer("bob")
        b.on_open(bob)
        b.on_message(bob, json.dumps({"type": "join", "room": ROOM}))
        await settle(b)
        await asyncio.gather(*list(b.streams.tasks))
        stream = await store.open_stream(ROOM, "oracle", time.time())
        assert stream is not None
        for seq, text in enumerate(("one ", "two ", "three ", "four"), 1):
            await store.append_stream(stream, "oracle", text, 100, time.time())
            a.streams.chunk_here(ROOM, stream, seq, "oracle", text)
            if seq == 2:
                wire.pending.clear()  # lost
            else:
                while wire.pending:
                    wire.deliver_some()
            if seq == 3:
                await asyncio.gather(*list(b.streams.tasks))
        got = [
            (f["seq"], f.get("whole", False), f["text"])
            for f in bob.frames
            if f["type"] == "stream"
        ]
        assert got == [
            (1, False, "one "),
            (3, True, "one two three "),
            (4, False, "four"),
        ]
        assert b.streams.repairs == 1
    finally:
        for handler in (a, b):
            await handler.close()
        await store.close()
