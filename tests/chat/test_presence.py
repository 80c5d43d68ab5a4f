"""Presence across nodes, with no I/O: one ``joined`` when a user appears anywhere, one ``left``
when it is gone from every node; snapshots repair lost events; silent nodes expire."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rawws.chat.presence import Change, ClusterPresence


def cluster(
    local: dict[str, set[str]] | None = None, ttl_s: float = 5.0
) -> ClusterPresence:
    here = local if local is not None else {}
    return ClusterPresence(lambda room: here.get(room, set()), ttl_s)


def test_a_remote_user_appears_once_and_leaves_once() -> None:
    presence = cluster()
    assert presence.event("b", "lobby", "ann", True, 0.0) == [
        Change("lobby", "ann", True)
    ]
    assert presence.event("b", "lobby", "ann", True, 0.1) == []  # told twice: still one
    assert presence.users("lobby") == ["ann"]
    assert presence.event("b", "lobby", "ann", False, 0.2) == [
        Change("lobby", "ann", False)
    ]
    assert presence.event("b", "lobby", "ann", False, 0.3) == []
    assert presence.users("lobby") == []


def test_a_user_on_two_nodes_leaves_when_gone_from_both() -> None:
    presence = cluster()
    presence.event("b", "lobby", "ann", True, 0.0)
    assert presence.event("c", "lobby", "ann", True, 0.0) == []
    assert presence.event("b", "lobby", "ann", False, 0.1) == []  # still on c
    assert presence.users("lobby") == ["ann"]
    assert presence.event("c", "lobby", "ann", False, 0.2) == [
        Change("lobby", "ann", False)
    ]


def test_a_user_present_here_is_not_announced_from_elsewhere() -> None:
    local = {"lobby": {"ann"}}
    presence = cluster(local)
    assert presence.event("b", "lobby", "ann", True, 0.0) == []
    assert presence.users("lobby") == ["ann"]
    assert presence.elsewhere("lobby", "ann")
    assert presence.event("b", "lobby", "ann", False, 0.0) == []


def test_a_snapshot_repairs_lost_events() -> None:
    presence = cluster()
    presence.event("b", "lobby", "ann", True, 0.0)
    # "ann left" and "bob joined" were lost; the heartbeat says who is there
    changes = presence.snapshot(
        "b", {"lobby": frozenset({"bob"}), "dev": frozenset({"cat"})}, 1.0
    )
    assert sorted(changes, key=repr) == sorted(
        [
            Change("lobby", "bob", True),
            Change("lobby", "ann", False),
            Change("dev", "cat", True),
        ],
        key=repr,
    )
    assert (
        presence.snapshot(
            "b", {"lobby": frozenset({"bob"}), "dev": frozenset({"cat"})}, 2.0
        )
        == []
    )


def test_a_silent_node_expires_and_its_users_leave_once() -> None:
    presence = cluster(ttl_s=5.0)
    presence.snapshot("b", {"lobby": frozenset({"ann", "bob"})}, 0.0)
    presence.snapshot("c", {"lobby": frozenset({"bob"})}, 0.0)
    presence.snapshot("c", {"lobby": frozenset({"bob"})}, 4.0)
    assert presence.expire(5.0) == []
    assert presence.expire(5.5) == [Change("lobby", "ann", False)]  # bob is still on c
    assert presence.expire(6.0) == []
    assert presence.users("lobby") == ["bob"]


events = st.lists(
    st.tuples(st.sampled_from("bcd"), st.sampled_from(["ann", "bob"]), st.booleans()),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(events)
def test_announcements_alternate_and_match_the_truth(
    sequence: list[tuple[str, str, bool]],
) -> None:
    """Whatever the order of events, per user the announcements alternate joined/left, start with
    joined, and the last one says whether the user is on some node now."""
    presence = cluster()
    truth: dict[str, set[str]] = {}
    said: dict[str, list[bool]] = {}
    for node, user, joined in sequence:
        (
            truth.setdefault(node, set()).add
            if joined
            else truth.setdefault(node, set()).discard
        )(user)
        for change in presence.event(node, "lobby", user, joined, 0.0):
            said.setdefault(change.user, []).append(change.joined)
    for user in ("ann", "bob"):
        told = said.get(user, [])
        assert told == [i % 2 == 0 for i in range(len(told))]
        present = any(user in users for users in truth.values())
        assert (bool(told) and told[-1]) == present
        assert (user in presence.users("lobby")) == present
