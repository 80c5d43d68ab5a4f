"""Streamed messages end to end: the calls over HTTP against a real server, what members see over /ws.

Every claim is about what a real client got: the ``stream`` frames of a stream (each
chunk once, in order, or one ``whole`` frame then the rest for a member who joined
mid-stream), then its ``message`` once, in history and in a ``since`` replay once.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from pathlib import Path

from rawws.apps.streams import IdleStreams
from rawws.chat.wire import MAX_TEXT_CHARS
from rawws.server.server import Server
from tests.apps.key_rows import api, live_key
from tests.conftest import StartServer
from tests.support.chat_client import (
    ChatClient,
    Frame,
    chat_handler,
    chatting,
    close_quietly,
    connect_chat,
    new_user,
)

ROOM = "talk"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stream_text.py"


def streamed(client: ChatClient, stream: str) -> list[Frame]:
    return client.of_type("stream", stream=stream)


def finals(client: ChatClient, stream: str) -> list[Frame]:
    return client.of_type("message", stream=stream)


def text_seen(frames: list[Frame]) -> str:
    """The preview a client builds from ``stream`` frames; each must follow on (no repeat, no gap)."""
    text, seq = "", 0
    for frame in frames:
        if frame.get("whole"):
            assert frame["seq"] >= seq, frames
            text, seq = frame["text"], frame["seq"]
        else:
            assert frame["seq"] == seq + 1, frames
            text, seq = text + frame["text"], frame["seq"]
    return text


async def open_stream(server: Server, key: str, room: str = ROOM) -> str:
    reply = await api(server.port, key, "stream_open", room=room)
    assert reply.status == 200, reply.body
    assert reply.json["room"] == room
    return str(reply.json["stream"])


async def append(server: Server, key: str, stream: str, text: str) -> int:
    reply = await api(server.port, key, "stream_append", stream=stream, text=text)
    assert reply.status == 200, reply.body
    assert reply.json["stream"] == stream
    return int(reply.json["seq"])


async def test_open_append_finish_over_http(
    start_server: StartServer, db_url: str | None
) -> None:
    server = await start_server(db_url=db_url)
    key = await live_key(server, "oracle")
    other = await live_key(server, "someone")
    async with chatting(server, "ann") as (ann,):
        await ann.join(ROOM)
        stream = await open_stream(server, key)
        chunks = ["The ", "answer ", "is ", "42."]
        for seq, chunk in enumerate(chunks, 1):
            assert await append(server, key, stream, chunk) == seq
        # another key learns nothing of it; an unknown stream is the same answer
        for who, name in ((other, stream), (key, "nosuchstream")):
            for call, body in (("stream_append", {"text": "x"}), ("stream_finish", {})):
                reply = await api(server.port, who, call, stream=name, **body)
                assert reply.status == 404, reply.body
                assert reply.json["error"]["code"] == "no_such_stream"
        reply = await api(server.port, key, "stream_finish", stream=stream)
        assert reply.status == 200, reply.body
        assert reply.json["room"] == ROOM and reply.json["stream"] == stream
        message_id = reply.json["id"]
        again = await api(server.port, key, "stream_finish", stream=stream)
        assert again.status == 200 and again.json["id"] == message_id
        late = await api(server.port, key, "stream_append", stream=stream, text="!")
        assert late.status == 409 and late.json["error"]["code"] == "stream_finished"

        final = await ann.wait_frame("message", stream=stream)
        assert final["id"] == message_id and final["text"] == "".join(chunks)
        assert final["user"] == "oracle" and final["app"] is True
        frames = streamed(ann, stream)
        assert [f["seq"] for f in frames] == [1, 2, 3, 4]
        assert all(f["user"] == "oracle" and f["app"] is True for f in frames)
        assert not any(f.get("whole") for f in frames)
        assert text_seen(frames) == final["text"]
        # the message after its chunks, and once (the repeated finish is dropped here)
        await ann.send(type="history", room=ROOM)
        history = await ann.wait_frame("history", room=ROOM)
        assert [m.get("stream") for m in history["messages"]].count(stream) == 1
        assert len(finals(ann, stream)) == 1
        assert ann.frames.index(final) > ann.frames.index(frames[-1])


async def test_refusals(start_server: StartServer) -> None:
    server = await start_server()
    key = await live_key(server, "oracle")
    read_only = await live_key(server, "reader", scopes=("read",))
    elsewhere = await live_key(server, "elsewhere", rooms=("other-*",))
    async with chatting(server, "ann", "bob") as (ann, bob):
        await ann.join(ROOM)
        await ann.send(type="dm", user="bob")
        direct = (await ann.wait_frame("direct"))["room"]
        for room in ("nowhere", direct):
            reply = await api(server.port, key, "stream_open", room=room)
            assert reply.status == 404 and reply.json["error"]["code"] == "no_such_room"
        reply = await api(server.port, elsewhere, "stream_open", room=ROOM)
        assert reply.status == 404 and reply.json["error"]["code"] == "no_such_room"
        reply = await api(server.port, read_only, "stream_open", room=ROOM)
        assert reply.status == 403 and reply.json["error"]["code"] == "scope"
        stream = await open_stream(server, key)
        for text, code in (("", "bad_field"), ("a\x00b", "bad_field")):
            reply = await api(
                server.port, key, "stream_append", stream=stream, text=text
            )
            assert reply.status == 400 and reply.json["error"]["code"] == code
        assert await append(server, key, stream, "x" * (MAX_TEXT_CHARS - 1)) == 1
        reply = await api(server.port, key, "stream_append", stream=stream, text="yz")
        assert reply.status == 413 and reply.json["error"]["code"] == "too_long"
        assert await append(server, key, stream, "y") == 2  # nothing of the refused one
        reply = await api(server.port, key, "stream_finish", stream=stream, extra=1)
        assert reply.status == 400 and reply.json["error"]["code"] == "bad_field"
        reply = await api(server.port, key, "stream_finish", stream=stream)
        final = await ann.wait_frame("message", stream=stream)
        assert final["text"] == "x" * (MAX_TEXT_CHARS - 1) + "y"
        assert bob.of_type("stream") == []  # not in the room


async def test_join_mid_stream_gets_the_text_so_far_then_the_rest(
    start_server: StartServer,
) -> None:
    server = await start_server()
    key = await live_key(server, "oracle")
    async with chatting(server, "ann", "bob") as (ann, bob):
        await ann.join(ROOM)
        stream = await open_stream(server, key)
        for chunk in ("one ", "two ", "three "):
            await append(server, key, stream, chunk)
        await ann.wait_frame("stream", stream=stream, seq=3)
        await bob.join(ROOM)
        whole = await bob.wait_frame("stream", stream=stream)
        assert whole["whole"] is True and whole["seq"] == 3
        assert whole["text"] == "one two three "
        for chunk in ("four ", "five"):
            await append(server, key, stream, chunk)
        await api(server.port, key, "stream_finish", stream=stream)
        for client in (ann, bob):
            final = await client.wait_frame("message", stream=stream)
            assert final["text"] == "one two three four five"
            assert text_seen(streamed(client, stream)) == final["text"]
        assert [(f["seq"], f.get("whole", False)) for f in streamed(bob, stream)] == [
            (3, True),
            (4, False),
            (5, False),
        ]
        await asyncio.sleep(0)  # nothing else is queued for them: one message each
        assert len(finals(ann, stream)) == len(finals(bob, stream)) == 1


async def test_joins_racing_chunks_see_each_chunk_once(
    start_server: StartServer,
) -> None:
    """Members join at random moments of a stream: each gets whole-then-rest, none twice or missed."""
    server = await start_server()
    key = await live_key(server, "oracle")
    tokens = {name: await new_user(server.port, name) for name in ("ann", "bob")}
    rng = random.Random(23)
    watcher = await connect_chat(server, tokens["ann"], "ann")
    joiners: list[ChatClient] = []
    try:
        await watcher.join(ROOM)
        stream = await open_stream(server, key)
        chunks = [f"w{i} " for i in range(40)]

        async def writer() -> None:
            for chunk in chunks:
                await append(server, key, stream, chunk)
                if rng.random() < 0.3:
                    await asyncio.sleep(0)

        async def joiner() -> None:
            await asyncio.sleep(rng.random() * 0.05)
            client = await connect_chat(server, tokens["bob"], "bob")
            joiners.append(client)
            await client.join(
                ROOM
            )  # its replay and its read of the streams race chunks

        await asyncio.gather(writer(), *(joiner() for _ in range(8)))
        finished = await api(server.port, key, "stream_finish", stream=stream)
        assert finished.status == 200
        for client in (watcher, *joiners):
            final = await client.wait_frame("message", stream=stream)
            assert final["text"] == "".join(chunks)
            frames = streamed(client, stream)
            if frames:  # a joiner late enough has the message only
                assert text_seen(frames) == final["text"], (client.user, frames)
            assert client.frames.index(final) > max(
                (client.frames.index(f) for f in frames), default=-1
            )
    finally:
        await close_quietly(watcher, *joiners)


async def test_since_after_the_finish_gives_the_message_once(
    start_server: StartServer,
) -> None:
    server = await start_server()
    key = await live_key(server, "oracle")
    token = await new_user(server.port, "ann")
    ann = await connect_chat(server, token, "ann")
    joined = await ann.join(ROOM)
    await ann.close()
    stream = await open_stream(server, key)
    for chunk in ("a", "b", "c"):
        await append(server, key, stream, chunk)
    reply = await api(server.port, key, "stream_finish", stream=stream)
    back = await connect_chat(server, token, "ann")
    try:
        await back.join(ROOM, since=joined["last_id"])
        final = await back.wait_frame("message", stream=stream)
        assert final["id"] == reply.json["id"] and final["text"] == "abc"
        await back.send(type="history", room=ROOM)
        await back.wait_frame("history", room=ROOM)
        assert streamed(back, stream) == []
        assert len(finals(back, stream)) == 1
    finally:
        await back.close()


async def test_an_idle_stream_is_finished_with_what_it_has(
    start_server: StartServer,
) -> None:
    server = await start_server()
    key = await live_key(server, "oracle")
    chat = chat_handler(server)
    idle = IdleStreams(chat.store, chat.feed, idle_s=0.3, every_s=0.05)  # type: ignore[arg-type]
    async with chatting(server, "ann") as (ann,):
        await ann.join(ROOM)
        stream = await open_stream(server, key)
        empty = await open_stream(server, key)
        await append(server, key, stream, "half a thou")
        idle.start()
        try:
            final = await ann.wait_frame("message", stream=stream)
            assert final["text"] == "half a thou" and final["user"] == "oracle"
            reply = await api(server.port, key, "stream_finish", stream=stream)
            assert reply.json["id"] == final["id"]  # finished once, by the server
            late = await api(server.port, key, "stream_append", stream=stream, text="!")
            assert late.status == 409
        finally:
            await idle.close()
        # the one never written to was dropped, not stored as an empty message
        reply = await api(server.port, key, "stream_finish", stream=empty)
        assert reply.status == 404
        assert finals(ann, empty) == []


async def test_appends_at_once_take_their_turns_and_finishes_store_it_once(
    start_server: StartServer, db_url: str | None
) -> None:
    workers = 4
    server = await start_server(db_url=db_url)
    key = await live_key(server, "oracle")
    async with chatting(server, "ann") as (ann,):
        await ann.join(ROOM)
        stream = await open_stream(server, key)
        seqs = await asyncio.gather(
            *(append(server, key, stream, f"<{i}>") for i in range(workers * 5))
        )
        assert sorted(seqs) == list(range(1, workers * 5 + 1))
        finishes = await asyncio.gather(
            *(api(server.port, key, "stream_finish", stream=stream) for _ in range(4))
        )
        assert len({reply.json["id"] for reply in finishes}) == 1  # stored once
        final = await ann.wait_frame("message", stream=stream)
        await ann.send(type="history", room=ROOM)
        history = await ann.wait_frame("history", room=ROOM)
        assert [m.get("stream") for m in history["messages"]].count(stream) == 1
        assert len(finals(ann, stream)) == 1
        assert sorted(final["text"].split(">")[:-1]) == sorted(
            f"<{i}" for i in range(workers * 5)
        )
        assert text_seen(streamed(ann, stream)) == final["text"]


async def test_the_example_streams_a_file_into_a_room(
    start_server: StartServer, tmp_path: Path
) -> None:
    """``examples/stream_text.py`` as its docstring runs it: the member sees it grow, then one message."""
    server = await start_server()
    key = await live_key(server, "oracle")
    text = "It was a dark and stormy night; the rain fell in torrents.\n" * 3
    source = tmp_path / "story.txt"
    source.write_text(text, encoding="utf-8")
    async with chatting(server, "ann") as (ann,):
        await ann.join(ROOM)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLE),
            f"http://127.0.0.1:{server.port}",
            ROOM,
            str(source),
            env={**os.environ, "RAWWS_API_KEY": key},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0 and err == b"", err
        final = await ann.wait_frame("message", room=ROOM)
        assert final["text"] == text and final["app"] is True
        stream = final["stream"]
        assert out.decode() == f"stream {stream}: message {final['id']} in {ROOM}\n"
        frames = streamed(ann, stream)
        assert len(frames) > 1 and text_seen(frames) == text
