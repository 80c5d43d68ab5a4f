"""A room's own retention (``retention`` by its owner): who may set it, never beyond the
server's bounds, and the sweep applying the stricter of the two."""

from __future__ import annotations

import pytest

from rawws.chat import wire
from rawws.chat.access import authorize_retention
from rawws.chat.retention import RetentionSweep
from rawws.chat.wire_retention import RetentionChange
from rawws.errors import ChatError
from rawws.store.base import MEMBER, OWNER, PRIVATE, PUBLIC, Membership
from tests.chat.test_chat import StartChat, start_chat
from tests.chat.test_retention_gap import chat_handler
from tests.support.chat_client import chatting

start_chat = start_chat  # the fixture, by name


def row(room: str, role: str) -> Membership:
    return Membership(room, PRIVATE if "." in room else PUBLIC, role, 0)


@pytest.mark.parametrize(
    ("room", "found", "admin", "asked", "code"),
    [
        ("den", row("den", OWNER), False, (60, 0), None),
        ("den", row("den", MEMBER), False, (60, 0), wire.FORBIDDEN),
        ("den", None, False, (60, 0), wire.FORBIDDEN),
        ("den", None, True, (60, 0), None),  # an admin sets any room's
        ("den.abcdefgh", None, False, (60, 0), wire.NO_SUCH_ROOM),  # tells nothing
        ("den", row("den", OWNER), False, (7200, 0), wire.BAD_FIELD),  # > server's
        ("den", row("den", OWNER), False, (0, 11), wire.BAD_FIELD),
        ("den", row("den", OWNER), False, (3600, 10), None),  # the server's own
        ("~" + "a" * 24, row("~" + "a" * 24, OWNER), True, (60, 0), wire.BAD_ROOM),
    ],
)
def test_only_an_owner_or_an_admin_and_never_beyond_the_server(
    room: str,
    found: Membership | None,
    admin: bool,
    asked: tuple[int, int],
    code: str | None,
) -> None:
    command = RetentionChange(room, asked[0], asked[1], "r")
    if code is None:
        authorize_retention(command, found, admin, 3600.0, 10)
        return
    with pytest.raises(ChatError) as refused:
        authorize_retention(command, found, admin, 3600.0, 10)
    assert refused.value.code == code and refused.value.ref == "r"


def test_without_server_bounds_an_owner_sets_any() -> None:
    authorize_retention(
        RetentionChange("den", 10**6, 10**6), row("den", OWNER), False, 0.0, 0
    )


async def test_the_owner_keeps_less_and_the_sweep_applies_it(
    start_chat: StartChat,
) -> None:
    server = await start_chat(history_max_messages=50)
    async with chatting(server, "ann", "bob") as (ann, bob):
        await ann.send(type="create", room="den", kind="public", ref="c")
        await ann.wait_frame("created", room="den")
        await ann.join("den")
        await bob.join("den")
        await bob.send(type="retention", room="den", max_messages=2, ref="b")
        refused = await bob.wait_frame("error", ref="b")
        assert refused["code"] == wire.FORBIDDEN
        await ann.send(type="retention", room="den", max_messages=51, ref="x")
        assert (await ann.wait_frame("error", ref="x"))["code"] == wire.BAD_FIELD
        await ann.send(type="retention", room="den", max_messages=3, ref="a")
        answer = await ann.wait_frame("retention", ref="a")
        assert answer == {
            "type": "retention",
            "room": "den",
            "max_age": 0,
            "max_messages": 3,
            "ref": "a",
        }
        for n in range(6):
            await ann.say("den", f"m{n}", ref=f"m{n}")
        await ann.wait_ack("m5")
        handler = chat_handler(server)
        sweep = RetentionSweep(handler.store, 0, 50)  # the server's bound, as app.py
        await sweep.sweep_once()
        kept = await handler.store.messages_after("den", 0, 100)
        assert [m.text for m in kept if m.kind == "say"] == ["m3", "m4", "m5"]
        # the lobby has no bound of its own: the server's 50 keeps all of it
        assert await handler.store.kept_from("lobby") == 1
