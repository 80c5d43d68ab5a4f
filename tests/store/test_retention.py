"""Retention in the store (``rawws.store.retention``), on SQLite and PostgreSQL: what is
removed is the oldest prefix of a room, and never an entry younger than the age bound or
one of the newest ``max_messages`` messages."""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawws.chat.retention import RetentionSweep
from rawws.store import NewMessage, SqlStore, open_store, sqlite_url
from rawws.store.base import MemberEvent
from rawws.store.schema import SCHEMA_VERSION, schema_version

NOW = 1_000_000.0
rooms = itertools.count(1)


async def stored_ids(store: SqlStore, room: str) -> list[int]:
    return [m.id for m in await store.messages_after(room, 0, 10_000)]


async def test_the_oldest_prefix_goes_and_the_first_kept_id_says_where_it_ends(
    store: SqlStore,
) -> None:
    ages = [500, 400, 300, 90, 350, 10]  # seconds before NOW; the 5th is old but late
    await store.append_messages(
        [NewMessage("lobby", "ada", f"m{i}", NOW - age) for i, age in enumerate(ages)]
    )
    assert await store.kept_from("lobby") == 1
    sweep = RetentionSweep(store, max_age_s=200, max_messages=0, clock=lambda: NOW)
    assert await sweep.sweep_once() == 3  # ids 1-3; id 5 waits behind the young id 4
    assert await stored_ids(store, "lobby") == [4, 5, 6]
    assert await store.kept_from("lobby") == 4
    assert await sweep.sweep_once() == 0  # again: nothing more

    count = RetentionSweep(store, max_age_s=0, max_messages=2, clock=lambda: NOW)
    assert await count.sweep_once() == 1
    assert await stored_ids(store, "lobby") == [5, 6]
    assert await store.kept_from("nowhere") == 1


async def test_events_between_messages_go_with_their_prefix_and_do_not_count(
    store: SqlStore,
) -> None:
    await store.append_messages([NewMessage("den", "ada", "one", NOW)])
    await store.apply_member_event(
        MemberEvent("den", "invited", "ada", "bob", "", NOW, None)
    )
    await store.append_messages(
        [NewMessage("den", "ada", t, NOW) for t in ("two", "three")]
    )
    sweep = RetentionSweep(store, max_age_s=0, max_messages=2, clock=lambda: NOW)
    assert await sweep.sweep_once() == 2  # "one" and the event after it
    assert [m.text for m in await store.messages_after("den", 0, 10)] == [
        "two",
        "three",
    ]


async def test_everything_old_goes_and_the_next_id_is_where_reading_resumes(
    store: SqlStore,
) -> None:
    await store.append_messages(
        [NewMessage("attic", "ada", f"m{i}", NOW - 1000) for i in range(1200)]
    )  # more than one removal batch
    sweep = RetentionSweep(store, max_age_s=10, max_messages=0, clock=lambda: NOW)
    assert await sweep.sweep_once() == 1200
    assert await stored_ids(store, "attic") == []
    assert await store.kept_from("attic") == 1201
    assert await store.last_message_id("attic") == 1200  # ids are never given again


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    ages=st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=30),
    max_age=st.integers(min_value=0, max_value=1000),
    max_messages=st.integers(min_value=0, max_value=10),
)
async def test_nothing_younger_than_the_bounds_is_ever_removed(
    store: SqlStore, ages: list[int], max_age: int, max_messages: int
) -> None:
    room = f"r{next(rooms)}"
    await store.append_messages(
        [NewMessage(room, "ada", f"m{i}", NOW - age) for i, age in enumerate(ages)]
    )
    sweep = RetentionSweep(store, max_age, max_messages, clock=lambda: NOW)
    await sweep.sweep_once()
    kept = await stored_ids(store, room)
    every = list(range(1, len(ages) + 1))
    assert kept == every[len(every) - len(kept) :]  # a suffix: only a prefix went
    for message_id, age in zip(every, ages, strict=True):
        young = max_age == 0 or age <= max_age
        newest = max_messages == 0 or message_id > len(ages) - max_messages
        if young and newest:
            assert message_id in kept, (message_id, age)
    # and it removes what the bounds let go: no entry older than the first young one,
    # no more than the newest max_messages
    if max_age:
        young = [i for i, age in zip(every, ages, strict=True) if age <= max_age]
        assert not kept or kept[0] >= (young[0] if young else len(ages) + 1)
    if max_messages:
        assert len(kept) <= max_messages


async def test_a_version_9_database_gets_the_rooms_own_bounds(tmp_path: Path) -> None:
    """Version 9 had no ``max_age_s``, ``max_messages`` on rooms: added, every room without
    bounds of its own."""
    store = await open_store(sqlite_url(tmp_path))
    await store.append_messages([NewMessage("lobby", "ann", "old", NOW)])
    async with store.engine.begin() as conn:
        for column in ("max_age_s", "max_messages"):
            await conn.exec_driver_sql(f"ALTER TABLE rooms DROP COLUMN {column}")
        await conn.execute(schema_version.update().values(version=9))
    await store.close()
    store = await open_store(sqlite_url(tmp_path))
    try:
        assert await store.schema_version() == SCHEMA_VERSION == 12
        assert (await store.room_retention("lobby")).max_messages == 0
        await store.set_room_retention("lobby", 60.0, 5)
        bounds = await store.room_retention("lobby")
        assert (bounds.max_age_s, bounds.max_messages) == (60.0, 5)
    finally:
        await store.close()
