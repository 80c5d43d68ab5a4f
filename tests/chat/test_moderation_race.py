"""Two moderation commands at the same moment, on two nodes sharing one store.

Each command is judged on the roles it read; the store takes its event only if those
roles still hold under the room's lock (``MemberEvent.expect``), else it is judged again.
So a moderator demoted at the same moment as they kick someone either kicked first
(the kick's id is before the demotion's) or is refused: never a kick stored after the
demotion by someone who was no longer a moderator. On SQLite and the real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json

from rawws.store import StoredMessage
from rawws.store.base import KICKED, ROLE_CHANGED
from tests.chat.test_doors import Node, make_den, opened, settle
from tests.chat.test_doors import store_url as store_url  # the fixture

ROUNDS = 15


def kicks_by_a_non_moderator(entries: list[StoredMessage]) -> list[StoredMessage]:
    """Kicks stored while their actor was not a moderator or owner (replaying the roles)."""
    roles = {"ann": "owner"}
    wrong = []
    for entry in entries:
        if entry.kind == ROLE_CHANGED and entry.target:
            roles[entry.target] = entry.text
        elif entry.kind == KICKED and roles.get(entry.user) not in (
            "owner",
            "moderator",
        ):
            wrong.append(entry)
    return wrong


async def test_a_demotion_and_the_demoted_moderators_kick_at_once(
    store_url: str,
) -> None:
    store = await opened(store_url)
    a, b = Node(store), Node(store)  # two nodes: two handlers, one store
    try:
        ann, bob = a.connect("ann"), b.connect("bob")
        den = await make_den(a, ann)
        for user in ("bob", "cy"):
            await a.answer(ann, type="invite", room=den, user=user)
        outcomes: dict[str, int] = {"kicked first": 0, "refused": 0}
        for n in range(ROUNDS):
            promoted = await a.answer(
                ann, type="role", room=den, user="bob", role="moderator"
            )
            assert promoted["type"] == "moderated", promoted
            before = len(bob.frames)
            # both sent before either node runs anything: each is judged on the same roles
            a.handler.on_message(
                ann,
                json.dumps(
                    {"type": "role", "room": den, "user": "bob", "role": "member"}
                ),
            )
            b.handler.on_message(
                bob,
                json.dumps({"type": "kick", "room": den, "user": "cy", "ref": f"k{n}"}),
            )
            await asyncio.gather(settle(a.handler), settle(b.handler))
            answer = next(f for f in bob.frames[before:] if f.get("ref") == f"k{n}")
            if answer["type"] == "moderated":
                outcomes["kicked first"] += 1
                await a.answer(ann, type="invite", room=den, user="cy")
            else:
                assert answer["code"] == "forbidden", answer
                outcomes["refused"] += 1
        entries = await store.messages_after(den, 0, 10_000)
        assert kicks_by_a_non_moderator(entries) == []
        print(f"\n{store_url.split(':')[0]}: {ROUNDS} rounds, {outcomes}")
    finally:
        for node in (a, b):
            await node.handler.close()
        await store.close()
