"""The streams' part of the store on SQLite and the real PostgreSQL: what an open, an append and
a finish store or refuse, and what the idle look drops and forgets."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from rawws.store import SqlStore, open_store
from rawws.store.schema import rooms, streams
from rawws.store.streams import NoSuchStream, StreamFinished, StreamTooLong
from tests.chat.test_doors import (
    store_url as store_url,
)  # the fixture: SQLite, PostgreSQL


async def stream_rows(store: SqlStore) -> int:
    async with store.engine.connect() as conn:
        return int(
            (
                await conn.execute(sa.select(sa.func.count()).select_from(streams))
            ).scalar_one()
        )


async def test_what_the_store_keeps_and_refuses(store_url: str) -> None:
    store = await open_store(store_url)
    try:
        await store.create_room("plaza", "public", "ann")
        await store.open_direct("~" + "a" * 24, "ann", "bob")
        assert await store.open_stream("nowhere", "app", 1.0) is None
        assert await store.open_stream("~" + "a" * 24, "app", 1.0) is None
        stream = await store.open_stream("plaza", "app", 1.0)
        empty = await store.open_stream("plaza", "app", 1.0)
        assert stream is not None and empty is not None
        with pytest.raises(NoSuchStream):
            await store.append_stream(stream, "other", "x", 10, 2.0)
        state = await store.append_stream(stream, "app", "hello", 10, 2.0)
        assert (state.chunks, state.text, state.room) == (1, "hello", "plaza")
        with pytest.raises(StreamTooLong):
            await store.append_stream(stream, "app", " world", 10, 3.0)
        assert {s.id for s in await store.open_streams("plaza")} == {stream, empty}
        assert [s.id for s in await store.idle_streams(2.5, 10)] == [empty, stream]
        assert await store.discard_stream(stream) is False  # it has a chunk
        assert await store.discard_stream(empty) is True
        with pytest.raises(NoSuchStream):
            await store.finish_stream(stream, "other", 4.0)
        first = await store.finish_stream(stream, "app", 4.0)
        assert first.first and first.message is not None
        assert (first.message.text, first.message.app, first.message.stream) == (
            "hello",
            True,
            stream,
        )
        again = await store.finish_stream(stream, None, 5.0)
        assert (again.first, again.id, again.message) == (
            False,
            first.id,
            first.message,
        )
        with pytest.raises(StreamFinished):
            await store.append_stream(stream, "app", "!", 10, 6.0)
        finished = await store.stream_state(stream)
        assert finished is not None and finished.text == ""  # the message holds it
        assert await store.open_streams("plaza") == []
        assert await store.forget_finished_streams(4.5) == 1
        assert await stream_rows(store) == 0
        # a stream whose room went away is dropped by its finish
        gone = await store.open_stream("plaza", "app", 7.0)
        assert gone is not None
        await store.append_stream(gone, "app", "x", 10, 7.0)
        async with store.engine.begin() as conn:
            await conn.execute(rooms.delete().where(rooms.c.name == "plaza"))
        with pytest.raises(NoSuchStream):
            await store.finish_stream(gone, None, 8.0)
        assert await store.stream_state(gone) is None
    finally:
        await store.close()
