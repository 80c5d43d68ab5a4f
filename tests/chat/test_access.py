"""The chat's one authorization point (``rawws.chat.access``): every command × membership, with no I/O."""

from __future__ import annotations

import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawws.chat import wire, wire_reads
from rawws.chat import wire_edits as edits
from rawws.chat import wire_moderation as mod
from rawws.chat.access import RULES, authorize
from rawws.chat.wire_retention import RetentionChange
from rawws.errors import ChatError

ROOM = "lobby"
COMMANDS: dict[str, wire.Command] = {
    "join": wire.Join(ROOM),
    "leave": wire.Leave(ROOM),
    "say": wire.Say(ROOM, "hi", "r1"),
    "history": wire.HistoryRequest(ROOM),
    "who": wire.Who(ROOM),
    "create": wire.Create(ROOM, "public", "r2"),
    "invite": wire.Invite("den.abcdefgh", "bob", "r3"),
    "rooms": wire.RoomsRequest("r4"),
    "dm": wire.Dm("bob", "r5"),
    "kick": mod.Kick(ROOM, "bob", "r5"),
    "ban": mod.Ban(ROOM, "bob", "r6"),
    "unban": mod.Unban(ROOM, "bob", "r7"),
    "mute": mod.Mute(ROOM, "bob", 60, "r8"),
    "unmute": mod.Unmute(ROOM, "bob", "r9"),
    "role": mod.RoleChange(ROOM, "bob", "moderator", "r10"),
    "retention": RetentionChange(ROOM, 3600, 0, "r11"),
    "edit": edits.Edit(ROOM, 1, "new", "r11"),
    "delete": edits.Delete(ROOM, 1, "r12"),
    "read": wire_reads.Read(ROOM, 1, "r11"),
    "typing": wire_reads.Typing(ROOM),
}
# command → (the answer when the connection is in the room, the answer when it is not); None: allowed
MATRIX: dict[str, tuple[str | None, str | None]] = {
    "join": (wire.BAD_ROOM, None),
    "leave": (None, wire.NOT_JOINED),
    "say": (None, wire.NOT_JOINED),
    "history": (None, wire.NOT_JOINED),
    "who": (None, wire.NOT_JOINED),
    "create": (None, None),
    "invite": (None, None),  # then the stored membership decides (test_doors)
    "rooms": (None, None),
    "dm": (
        None,
        None,
    ),  # names a user: the store finds or makes the pair's room (test_direct)
    # moderation: the stored roles decide (authorize_actor, authorize_moderation; test_moderation)
    "kick": (None, None),
    "ban": (None, None),
    "unban": (None, None),
    "mute": (None, None),
    "unmute": (None, None),
    "role": (None, None),
    "retention": (None, None),  # the stored owner decides (authorize_retention)
    # whose message, and a deleter's stored role: the store decides (tests/store/test_edits)
    "edit": (None, wire.NOT_JOINED),
    "delete": (None, wire.NOT_JOINED),
    # a non-member's read or typing is refused before anything is looked at (test_reads)
    "read": (None, wire.NOT_JOINED),
    "typing": (None, wire.NOT_JOINED),
}


def test_every_command_of_the_wire_protocol_has_a_rule_and_a_row() -> None:
    assert set(RULES) == set(typing.get_args(wire.Command))
    assert {type(command) for command in COMMANDS.values()} == set(RULES) and set(
        MATRIX
    ) == set(COMMANDS)


@pytest.mark.parametrize("joined", [True, False], ids=["member", "non-member"])
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_matrix(name: str, joined: bool) -> None:
    expected = MATRIX[name][0 if joined else 1]
    if expected is None:
        authorize(COMMANDS[name], lambda room: joined)
        return
    with pytest.raises(ChatError) as refused:
        authorize(COMMANDS[name], lambda room: joined)
    assert refused.value.code == expected
    assert refused.value.ref == getattr(
        COMMANDS[name], "ref", None
    )  # a say's ref comes back with the refusal


def test_invite_names_a_private_room() -> None:
    with pytest.raises(ChatError) as refused:
        authorize(wire.Invite("lobby", "bob", "r"), lambda room: False)
    assert (refused.value.code, refused.value.ref) == (wire.BAD_ROOM, "r")


@given(
    rooms=st.sets(st.sampled_from(["a", "b", "c", "d"])),
    room=st.sampled_from(["a", "b", "c", "d"]),
)
def test_a_non_member_never_reads_a_room(rooms: set[str], room: str) -> None:
    """Whatever else the connection joined, history, who and say of a room it is not in are refused."""
    for command in (wire.HistoryRequest(room), wire.Who(room), wire.Say(room, "x")):
        if room in rooms:
            authorize(command, rooms.__contains__)
        else:
            with pytest.raises(ChatError):
                authorize(command, rooms.__contains__)
