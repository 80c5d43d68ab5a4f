"""What a ``ChatMember`` keeps between commands: a room of 100,000 members holds 100,000 of it."""

from __future__ import annotations

import asyncio
import json
import random
import sys

from rawws.chat.member import ChatMember
from rawws.chat.service import ChatHandler
from tests.chat.test_service import UNLIMITED, FakePeer, FakeStore, settle


async def test_a_member_whose_tasks_are_done_keeps_no_table_for_them() -> None:
    member = ChatMember(FakePeer("ada"), "ada")  # type: ignore[arg-type]
    ran: list[int] = []

    async def work(n: int) -> None:
        ran.append(n)

    tasks = [member.spawn(work(n)) for n in range(3)]
    assert len(member.tasks) == 3
    await asyncio.gather(*tasks)
    await asyncio.sleep(0)  # the done callbacks run a turn after
    assert ran == [0, 1, 2] and member.tasks == {}
    assert sys.getsizeof(member.tasks) == sys.getsizeof({})
    again = member.spawn(work(3))
    assert (
        again in member.tasks
    )  # a later task is still tracked (and cancelled at close)
    await again


async def test_a_joined_member_keeps_no_table_for_its_finished_join() -> None:
    """The join holds the room in ``entering`` and ``catching_up`` while it reads; once joined,
    both are empty dicts again, without the key tables they had for it."""
    store = FakeStore(random.Random(1))
    handler = ChatHandler(store, limits=UNLIMITED)  # type: ignore[arg-type]
    await handler.start()
    ada = FakePeer("ada")
    handler.on_open(ada)
    handler.on_message(ada, json.dumps({"type": "join", "room": "lobby"}))
    await settle(handler)
    assert [f["type"] for f in ada.frames][-1] == "joined"
    member = handler._members[ada]  # type: ignore[index]
    assert member.last_ids.keys() <= {"lobby"}
    for table in (member.entering, member.catching_up, member.tasks):
        assert table == {} and sys.getsizeof(table) == sys.getsizeof({})
    await handler.close()
