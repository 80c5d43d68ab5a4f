"""A session's queue: what a poll gets, what a lost answer gets again, the slow-reader bound.

A session is driven here as the chat drives it (``send_nowait``, ``close``) and
read as ``/poll`` reads it, on a real event loop; over SSE it is tested through
real sockets in ``test_routes.py``.
"""

from __future__ import annotations

import asyncio
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from rawws.accounts.tokens import Identity
from rawws.core.counters import Counters
from rawws.transports.position import format_position
from rawws.transports.session import POLL, Session, positions


def session(
    max_messages: int = 100, max_bytes: int = 1 << 20
) -> tuple[Session, list[int]]:
    closed: list[int] = []
    made = Session(
        "s1",
        POLL,
        Identity("ann", expires_at=2e9, token_id="t"),
        max_bytes=max_bytes,
        max_messages=max_messages,
        high_water=1 << 16,
        counters=Counters(),
        on_closed=lambda _, code: closed.append(code),
    )
    return made, closed


def texts(n: int, start: int = 0) -> list[str]:
    return [json.dumps({"type": "message", "id": i}) for i in range(start, start + n)]


async def test_a_lost_answer_comes_again_and_an_ack_drops_what_it_acknowledges() -> (
    None
):
    polled, _ = session()
    for text in texts(3):
        assert polled.send_nowait(text)
    events, cursor, _ = await polled.poll(0, 0)
    assert (events, cursor) == (texts(3), 3)
    again, cursor_again, _ = await polled.poll(0, 0)  # the answer was lost: asked again
    assert (again, cursor_again) == (texts(3), 3)
    polled.send_nowait(texts(1, 3)[0])
    assert await polled.poll(3, 0) == (texts(1, 3), 4, "")


async def test_a_waiting_poll_answers_when_something_is_sent() -> None:
    polled, _ = session()
    waiting = asyncio.create_task(polled.poll(0, 20))
    await asyncio.sleep(0)
    assert not waiting.done()
    polled.send_nowait(texts(1)[0])
    events, cursor, _ = await asyncio.wait_for(waiting, 5)
    assert (events, cursor) == (texts(1), 1)


async def test_a_second_poll_answers_the_one_waiting_at_once() -> None:
    polled, _ = session()
    first = asyncio.create_task(polled.poll(0, 20))
    await asyncio.sleep(0)
    second = asyncio.create_task(polled.poll(0, 20))
    assert await asyncio.wait_for(first, 5) == ([], 0, "")
    assert not second.done()
    second.cancel()


async def test_each_event_carries_the_position_it_was_queued_with() -> None:
    polled, _ = session()
    polled.last_ids["lobby"] = 4
    polled.send_nowait(texts(1)[0])
    polled.last_ids["lobby"] = 5
    polled.send_nowait(texts(1, 1)[0])
    assert (await polled.poll(0, 0))[2] == "lobby:5"
    polled.last_ids["lobby"] = 9  # sent later: not in what was queued
    assert polled.after(1) == (texts(1, 1), 2, "lobby:5")


async def test_a_reader_that_falls_behind_is_closed_1008_and_keeps_its_position() -> (
    None
):
    polled, closed = session(max_messages=4)
    polled.last_ids["lobby"] = 1
    polled.send_nowait(texts(1)[0])
    await polled.poll(1, 0)  # nothing acknowledged yet
    await polled.poll(1, 0)
    assert polled.after(1)[0] == []  # acknowledged: lobby:1 was delivered
    for n in range(2, 7):
        polled.last_ids["lobby"] = n
        polled.send_nowait(texts(1, n)[0])
    assert closed == []  # told soon, not from inside the send
    await asyncio.sleep(0)
    assert closed == [1008]
    assert not polled.open and not polled.send_nowait("{}")
    events, _, position = polled.after(1)
    assert [json.loads(e) for e in events] == [
        {"type": "closed", "code": 1008, "reason": "slow consumer"}
    ]
    assert position == "lobby:1"  # what the reader really got, not what was dropped


async def test_a_half_full_queue_holds_a_replay_until_a_poll_acknowledges() -> None:
    polled, _ = session(max_messages=8)
    for text in texts(4):
        polled.send_nowait(text)
    assert polled.backed_up
    writable = asyncio.create_task(polled.wait_writable())
    await asyncio.sleep(0)
    assert not writable.done()
    await polled.poll(4, 0)
    await asyncio.wait_for(writable, 5)
    assert not polled.backed_up


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(1, 5), st.just(0)), max_size=40))
def test_a_client_that_acks_what_it_got_gets_every_event_once_in_order(
    steps: list[int],
) -> None:
    """Pushes (``n`` events) and polls (``0``), answers lost at random or not: every event is
    seen, once each once duplicates of a lost answer are dropped by cursor, in order."""

    async def run() -> None:
        polled, _ = session()
        sent: list[str] = []
        got: list[str] = []
        ack = 0
        for index, step in enumerate(steps + [0]):
            if step:
                new = texts(step, len(sent))
                for text in new:
                    polled.send_nowait(text)
                sent += new
                continue
            events, cursor, _ = await polled.poll(ack, 0)
            if index % 3 == 1:
                continue  # this answer was lost: the client polls again with the same ack
            got += events
            ack = cursor
        events, cursor, _ = await polled.poll(ack, 0)
        got += events
        assert got == sent

    asyncio.run(run())


@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["lobby", "dev", "a.12345678"]),
            st.integers(0, 9),
            max_size=3,
        ),
        max_size=20,
    )
)
def test_the_id_line_kept_for_one_room_is_always_the_positions_own(
    asked: list[dict[str, int]],
) -> None:
    """The one-room line built once for a fan-out never stands for another position."""
    for last_ids in asked:
        text, line = positions(last_ids)
        assert text == format_position(last_ids)
        assert line == f"id: {text}\n\n".encode()
