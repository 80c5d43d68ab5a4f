"""The say hook's ordering rule, as a property: for any mix of says in rooms the app decides on and
rooms it does not, any verdicts and any delays of a real app (``tests.support.hook_app``), a
connection's says are stored and acknowledged in the order it sent them, a refused one is never
stored, and the app is asked only about the hooked rooms, in order. The chat runs as in
``test_doors``: the real handler and a real SQLite store, a peer that records what it is sent."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawws.accounts.hooks import HookClient
from rawws.chat.hooked import ChatHooks
from tests.chat.test_doors import Node, opened
from tests.support.hook_app import SECRET, Call, HookApp, verdict

# (room, allowed by the app, the app's delay in ms)
SAY = st.tuples(st.sampled_from(["ask", "free"]), st.booleans(), st.integers(0, 15))


async def scenario(directory: Path, says: list[tuple[str, bool, int]]) -> None:
    plan = {f"m{i}": (allow, delay) for i, (_, allow, delay) in enumerate(says)}

    async def decide(call: Call) -> tuple[int, bytes]:
        allow, delay = plan[call.body["text"]]
        await asyncio.sleep(delay / 1000)
        return verdict(allow, "no")

    app = await HookApp(decide=decide).start()
    store = await opened(directory)
    try:
        node = Node(store)
        client = HookClient(app.url, SECRET, 5.0)
        node.handler.hooks = ChatHooks(client, ("ask",), node.handler.hub.is_member)
        ann = node.connect("ann")
        await node.ask(ann, type="join", room="ask")
        await node.ask(ann, type="join", room="free")
        start = len(ann.frames)
        for i, (room, _, _) in enumerate(says):
            node.handler.on_message(
                ann, f'{{"type":"say","room":"{room}","text":"m{i}","ref":"m{i}"}}'
            )
        async with asyncio.timeout(20):
            while len(
                [f for f in ann.frames[start:] if f["type"] in ("ack", "error")]
            ) < len(says):
                await asyncio.sleep(0.005)
        await node.handler.writer.flush()
        expected = [
            f"m{i}"
            for i, (room, allow, _) in enumerate(says)
            if room == "free" or allow
        ]
        acked = [f["ref"] for f in ann.frames[start:] if f["type"] == "ack"]
        assert acked == expected
        refused = {f["ref"] for f in ann.frames[start:] if f["type"] == "error"}
        assert refused == {f"m{i}" for i, _ in enumerate(says)} - set(expected)
        stored = []
        for room in ("ask", "free"):
            stored += [
                (m.id, m.room, m.text)
                for m in await store.messages_after(room, 0, 1000)
                if m.kind == "say"
            ]
        by_text = {text: (room, message_id) for message_id, room, text in stored}
        assert sorted(by_text) == sorted(expected)
        for room in ("ask", "free"):  # ids in a room follow the order sent
            ids = [by_text[t][1] for t in expected if by_text[t][0] == room]
            assert ids == sorted(ids)
        asked = [c.body["text"] for c in app.calls]
        assert asked == [
            f"m{i}" for i, (room, _, _) in enumerate(says) if room == "ask"
        ]
        assert app.bad_signatures == 0
        node.handler.on_close(ann, 1000)
        await node.handler.close()
    finally:
        await store.close()
        await app.close()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(SAY, min_size=1, max_size=12))
def test_says_keep_their_order_behind_the_app(
    says: list[tuple[str, bool, int]],
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(scenario(Path(directory), says))
