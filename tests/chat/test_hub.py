"""Rooms, presence and encode-once fan-out, with no I/O: members are plain recorders."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from rawws.chat import wire as chat
from rawws.chat.hub import Hub, text_frame
from rawws.core.protocol import WebSocket


@dataclass(eq=False)
class Recorder:
    """A hub member that keeps what it was offered."""

    user: str
    got: list[tuple[str, int | None, str, bytes]] = field(default_factory=list)

    def deliver(
        self, room: str, message_id: int | None, text: str, frame: bytes
    ) -> None:
        self.got.append((room, message_id, text, frame))


def test_join_and_leave_report_presence_changes() -> None:
    hub = Hub()
    ada = Recorder("ada")
    assert hub.join(ada, "lobby") is True
    assert hub.join(ada, "lobby") is False  # already in: nothing changes
    assert hub.is_member(ada, "lobby")
    assert hub.users("lobby") == ["ada"]
    assert hub.rooms() == ["lobby"]
    assert hub.leave(ada, "lobby") is True
    assert not hub.is_member(ada, "lobby")
    assert hub.users("lobby") == []
    assert hub.rooms() == []  # an empty room is forgotten
    assert hub.leave(ada, "lobby") is False  # not in it any more


def test_a_user_with_two_connections_is_present_once() -> None:
    hub = Hub()
    tab1, tab2, bob = Recorder("ada"), Recorder("ada"), Recorder("bob")
    assert hub.join(tab1, "lobby") is True
    assert hub.join(tab2, "lobby") is False  # ada was present already
    assert hub.join(bob, "lobby") is True
    assert hub.users("lobby") == ["ada", "bob"]
    assert hub.leave(tab1, "lobby") is False  # ada is still there through tab2
    assert hub.users("lobby") == ["ada", "bob"]
    assert hub.leave(tab2, "lobby") is True  # the last connection: ada leaves
    assert hub.users("lobby") == ["bob"]
    assert hub.leave(bob, "lobby") is True
    assert hub.users("lobby") == []


def test_presence_is_per_room() -> None:
    hub = Hub()
    tab1, tab2 = Recorder("ada"), Recorder("ada")
    assert hub.join(tab1, "lobby") is True
    assert hub.join(tab2, "dev") is True  # another room: ada is new there
    assert hub.users("lobby") == ["ada"] and hub.users("dev") == ["ada"]
    assert hub.leave(tab1, "lobby") is True
    assert hub.users("dev") == ["ada"]
    assert hub.rooms() == ["dev"]


def test_leaving_a_room_one_never_joined_changes_nothing() -> None:
    hub = Hub()
    ada, bob = Recorder("ada"), Recorder("bob")
    hub.join(ada, "lobby")
    assert hub.leave(bob, "lobby") is False
    assert hub.leave(ada, "dev") is False
    assert hub.users("lobby") == ["ada"]


def test_users_are_sorted_and_unknown_rooms_are_empty() -> None:
    hub = Hub()
    for name in ("cy", "ada", "bob"):
        hub.join(Recorder(name), "lobby")
    assert hub.users("lobby") == ["ada", "bob", "cy"]
    assert hub.users("nowhere") == []
    assert hub.publish("nowhere", "hi") == 0


def test_publish_frames_once_and_every_member_gets_the_same_bytes() -> None:
    hub = Hub()
    members = [Recorder(f"user{i}") for i in range(5)]
    for member in members:
        hub.join(member, "lobby")
    text = chat.message(chat.StoredMessage("lobby", 7, "user0", "hello ☃" * 30, 1.5))
    assert hub.publish("lobby", text, 7) == 5
    frames = [member.got[0][3] for member in members]
    assert all(frame is frames[0] for frame in frames), (
        "the frame was encoded more than once"
    )
    assert frames[0] == WebSocket(client=False).send(
        text
    )  # what any plain server connection would send
    assert frames[0] == text_frame(text)
    for member in members:
        assert member.got == [("lobby", 7, text, frames[0])]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_the_shared_frame_matches_a_connection_at_every_length_encoding(
    size: int,
) -> None:
    text = "x" * size
    assert text_frame(text) == WebSocket(client=False).send(text)


def test_publish_excludes_one_member() -> None:
    hub = Hub()
    ada, bob, cy = Recorder("ada"), Recorder("bob"), Recorder("cy")
    for member in (ada, bob, cy):
        hub.join(member, "lobby")
    assert (
        hub.publish("lobby", chat.presence("lobby", "ada", "joined"), exclude=ada) == 2
    )
    assert ada.got == []
    assert [g[2] for g in bob.got] == [chat.presence("lobby", "ada", "joined")]
    assert bob.got[0][1] is None  # no message id on presence
    assert cy.got[0][3] is bob.got[0][3]


def test_exclude_is_one_connection_not_the_user() -> None:
    hub = Hub()
    tab1, tab2 = Recorder("ada"), Recorder("ada")
    hub.join(tab1, "lobby")
    hub.join(tab2, "lobby")
    assert hub.publish("lobby", "x", exclude=tab1) == 1
    assert tab1.got == [] and len(tab2.got) == 1


def test_members_of_other_rooms_get_nothing() -> None:
    hub = Hub()
    ada, bob, cy = Recorder("ada"), Recorder("bob"), Recorder("cy")
    hub.join(ada, "lobby")
    hub.join(bob, "dev")
    hub.join(cy, "lobby")
    hub.join(cy, "dev")
    hub.publish("lobby", "for the lobby", 1)
    hub.publish("dev", "for dev", 1)
    assert [(g[0], g[2]) for g in ada.got] == [("lobby", "for the lobby")]
    assert [(g[0], g[2]) for g in bob.got] == [("dev", "for dev")]
    assert [(g[0], g[2]) for g in cy.got] == [
        ("lobby", "for the lobby"),
        ("dev", "for dev"),
    ]


def test_a_member_that_left_gets_nothing_more() -> None:
    hub = Hub()
    ada, bob = Recorder("ada"), Recorder("bob")
    hub.join(ada, "lobby")
    hub.join(bob, "lobby")
    hub.publish("lobby", "one", 1)
    hub.leave(ada, "lobby")
    hub.publish("lobby", "two", 2)
    assert [g[2] for g in ada.got] == ["one"]
    assert [g[2] for g in bob.got] == ["one", "two"]


def test_delivery_order_is_publish_order() -> None:
    hub = Hub()
    ada = Recorder("ada")
    hub.join(ada, "lobby")
    for i in range(1, 101):
        hub.publish("lobby", f"m{i}", i)
    assert [g[1] for g in ada.got] == list(range(1, 101))


def test_a_member_leaving_during_publish_does_not_break_the_fan_out() -> None:
    """A deliver that makes the hub drop members (a slow consumer closed) while publishing."""
    hub = Hub()
    received: list[str] = []

    class Leaver(Recorder):
        def deliver(
            self, room: str, message_id: int | None, text: str, frame: bytes
        ) -> None:
            received.append(self.user)
            hub.leave(self, room)
            hub.leave(others[-1], room)

    first = Leaver("first")
    others = [Recorder(f"user{i}") for i in range(3)]
    hub.join(first, "lobby")
    for member in others:
        hub.join(member, "lobby")
    hub.publish(
        "lobby", "x", 1
    )  # must not raise "dictionary changed size during iteration"
    assert received == ["first"]
    assert all(len(m.got) == 1 for m in others)  # iteration is over a snapshot
