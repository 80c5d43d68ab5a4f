"""Private rooms through the chat service: the doors (create, invite, join), who reads what, and the leak.

The handler is driven as the server drives it, with peers that record what they are
sent, on a real SQLite store (membership is a stored thing, so no fake store). Two
handlers on one store are two nodes: membership must be read from the store, never
only from the node that took the invitation.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawws.chat import wire as chat
from rawws.chat.doors import IsAdmin, never_admin
from rawws.chat.service import ChatHandler
from rawws.store import SqlStore, open_store, sqlite_url
from tests.chat.test_service import UNLIMITED, FakePeer

HASH = "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
USERS = ("ann", "bob", "cy", "dan")


async def settle(handler: ChatHandler) -> None:
    """Until every commit, replay and query has finished (real I/O: real waits, with a deadline)."""
    async with asyncio.timeout(10):
        while True:
            await handler.writer.flush()
            if handler._tasks:
                await asyncio.wait(set(handler._tasks))
                continue
            await asyncio.sleep(0)
            if not handler._tasks and not handler.writer._pending:
                return


class Node:
    """One chat handler (a node) and a way to ask it things."""

    def __init__(self, store: SqlStore, *, is_admin: IsAdmin = never_admin) -> None:
        self.handler = ChatHandler(store, limits=UNLIMITED, is_admin=is_admin)

    def connect(self, user: str) -> FakePeer:
        peer = FakePeer(user)
        self.handler.on_open(peer)
        return peer

    async def ask(self, peer: FakePeer, **frame: Any) -> list[dict]:
        """Send one frame; what came back once everything it started has finished."""
        before = len(peer.frames)
        self.handler.on_message(peer, json.dumps(frame))
        await settle(self.handler)
        return peer.frames[before:]

    #: Frames that are not the answer to a command (what others' doings tell everyone).
    NOT_ANSWERS: tuple[str, ...] = ("presence",)

    async def answer(self, peer: FakePeer, **frame: Any) -> dict:
        """The one answer to a frame: its error code, or its type."""
        got = [
            f
            for f in await self.ask(peer, **frame)
            if f["type"] not in self.NOT_ANSWERS
        ]
        assert got, frame
        return got[0]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh SQLite file, or a fresh database on the real PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    url: str = request.getfixturevalue("postgres_url")
    return url


async def opened(where: Path | str) -> SqlStore:
    """A store with the test users registered, at a URL or in a directory (SQLite)."""
    url = where if isinstance(where, str) else sqlite_url(where)
    store = await open_store(url)
    for name in USERS:
        await store.create_user(name, HASH)
    return store


async def outsider_hears(
    node: Node, talker: FakePeer, room: str, never: str, commands: list[dict]
) -> dict[str, list[str]]:
    """What a fresh outsider ("cy") is told for ``commands`` about ``room`` and about ``never``
    (a name no room has), while ``talker`` keeps talking in ``room``: each room's name masked."""
    heard: dict[str, list[str]] = {}
    for name in (room, never):
        cy = node.connect("cy")
        for frame in commands:
            await node.ask(cy, **frame, room=name)
            await node.answer(talker, type="say", room=room, text="more", ref="m")
        heard[name] = [json.dumps(f).replace(name, "ROOM") for f in cy.frames]
        node.handler.on_close(cy, 1000)
    return heard


def kind_of(answer: dict) -> str:
    return answer["code"] if answer["type"] == "error" else answer["type"]


async def make_den(node: Node, ann: FakePeer) -> str:
    created = await node.answer(ann, type="create", room="den", kind="private", ref="c")
    assert created["type"] == "created" and created["role"] == "owner"
    assert created["kind"] == "private" and created["ref"] == "c"
    room: str = created["room"]
    assert room.startswith("den.") and chat.PRIVATE_ROOM_NAME.fullmatch(room)
    return room


# -- the authorization table -----------------------------------------------------------

# (command, kind) → the answer to the owner, a member, a non-member
TABLE: dict[tuple[str, str], tuple[str, str, str]] = {
    ("join", "public"): ("joined", "joined", "joined"),
    ("history", "public"): ("history", "history", "history"),
    ("who", "public"): ("members", "members", "members"),
    ("say", "public"): ("ack", "ack", "ack"),
    ("leave", "public"): ("left", "left", "left"),
    ("invite", "public"): (chat.BAD_ROOM, chat.BAD_ROOM, chat.BAD_ROOM),
    ("join", "private"): ("joined", "joined", chat.NO_SUCH_ROOM),
    ("history", "private"): ("history", "history", chat.NOT_JOINED),
    ("who", "private"): ("members", "members", chat.NOT_JOINED),
    ("say", "private"): ("ack", "ack", chat.NOT_JOINED),
    ("leave", "private"): ("left", "left", chat.NOT_JOINED),
    ("invite", "private"): ("invited", chat.FORBIDDEN, chat.NO_SUCH_ROOM),
}
FIELDS: dict[str, dict[str, Any]] = {
    "history": {},
    "who": {},
    "say": {"text": "hi", "ref": "s"},
    "leave": {},
    "invite": {"user": "dan", "ref": "i"},
}


async def test_the_authorization_table(store_url: str) -> None:
    """command × role (owner, member, non-member) × kind (public, private), each on a fresh connection
    that first tries to join (as any client would); on SQLite and PostgreSQL."""
    store = await opened(store_url)
    node = Node(store)
    try:
        ann = node.connect("ann")
        den = await make_den(node, ann)
        plaza = await node.answer(ann, type="create", room="plaza", kind="public")
        assert (plaza["room"], plaza["kind"], plaza["role"]) == (
            "plaza",
            "public",
            "owner",
        )
        invited = await node.answer(ann, type="invite", room=den, user="BOB", ref="i")
        assert invited == {"type": "invited", "room": den, "user": "bob", "ref": "i"}
        rooms = {"public": "plaza", "private": den}
        got: dict[tuple[str, str], tuple[str, ...]] = {}
        for (command, kind), _ in TABLE.items():
            answers = []
            for user in ("ann", "bob", "cy"):
                peer = node.connect(user)
                room = rooms[kind]
                joined = await node.answer(peer, type="join", room=room)
                if command != "join":
                    answer = await node.answer(
                        peer, type=command, room=room, **FIELDS[command]
                    )
                else:
                    answer = joined
                answers.append(kind_of(answer))
                node.handler.on_close(peer, 1000)
            got[(command, kind)] = tuple(answers)
        assert got == TABLE
    finally:
        await node.handler.close()
        await store.close()


# -- the leak: a non-member's answers equal a never-made room's ---------------------------

command = st.one_of(
    st.fixed_dictionaries({"type": st.just("join")}),
    st.fixed_dictionaries(
        {"type": st.just("join"), "since": st.integers(0, 5)},
    ),
    st.fixed_dictionaries({"type": st.just("leave")}),
    st.fixed_dictionaries({"type": st.just("who")}),
    st.fixed_dictionaries(
        {"type": st.just("say"), "text": st.just("x"), "ref": st.just("r")}
    ),
    st.fixed_dictionaries(
        {"type": st.just("history"), "before": st.one_of(st.none(), st.integers(1, 9))}
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("invite"),
            "user": st.sampled_from(["ann", "dan", "nobody"]),
            "ref": st.just("i"),
        }
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    commands=st.lists(command, min_size=1, max_size=6),
    others_invited=st.booleans(),
)
def test_a_private_room_answers_a_non_member_as_a_room_never_made(
    commands: list[dict], others_invited: bool
) -> None:
    """For every command sequence, what a non-member hears about a private room (which has messages
    and members, some in it now) is what they hear about a private name no room has."""
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(leak_scenario(Path(directory), commands, others_invited))


async def leak_scenario(
    directory: Path, commands: list[dict], others_invited: bool
) -> None:
    store = await opened(directory)
    node = Node(store)
    try:
        ann = node.connect("ann")
        den = await make_den(node, ann)
        if others_invited:  # the room has members besides its owner
            await node.answer(ann, type="invite", room=den, user="dan")
        await node.answer(ann, type="join", room=den)
        for text in ("one", "two"):
            await node.answer(ann, type="say", room=den, text=text, ref=text)
        never = "den.zzzzzzzz"
        heard = await outsider_hears(node, ann, den, never, commands)
        assert heard[den] == heard[never]
        assert not any('"type": "message"' in f for f in heard[den])
    finally:
        await node.handler.close()
        await store.close()


async def test_rooms_lists_a_private_room_to_its_members_only(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    node = Node(store)
    try:
        ann, bob, cy = (node.connect(u) for u in ("ann", "bob", "cy"))
        den = await make_den(node, ann)
        await node.answer(ann, type="create", room="plaza", kind="public")
        await node.answer(ann, type="invite", room=den, user="bob")
        listed = {
            user.user: (await node.answer(user, type="rooms", ref="q"))["rooms"]
            for user in (ann, bob, cy)
        }
        # a member's view has their read marker (from their invitation on) and unread count
        mine = {"last_read": 0, "unread": 0}
        assert listed["ann"] == [
            {"room": den, "kind": "private", "role": "owner", **mine},
            {"room": "plaza", "kind": "public", "role": "owner", **mine},
        ]
        assert listed["bob"] == [
            {"room": den, "kind": "private", "role": "member", "last_read": 1}
            | {"unread": 0},
            {"room": "plaza", "kind": "public", "role": None},
        ]
        assert listed["cy"] == [{"room": "plaza", "kind": "public", "role": None}]
        taken = await node.answer(
            cy, type="create", room="plaza", kind="public", ref="t"
        )
        assert (taken["code"], taken["ref"]) == (chat.ROOM_TAKEN, "t")
    finally:
        await node.handler.close()
        await store.close()


async def test_inviting_an_unknown_user_changes_nothing_and_keeps_the_connection(
    tmp_path: Path,
) -> None:
    store = await opened(tmp_path)
    node = Node(store)
    try:
        ann = node.connect("ann")
        den = await make_den(node, ann)
        refused = await node.answer(
            ann, type="invite", room=den, user="nobody", ref="n"
        )
        assert (refused["code"], refused["ref"]) == (chat.NO_SUCH_USER, "n")
        assert await store.membership(den, "nobody") is None
        assert ann.open
        assert kind_of(await node.answer(ann, type="join", room=den)) == "joined"
    finally:
        await node.handler.close()
        await store.close()


# -- what a member reads --------------------------------------------------------------------


async def test_a_member_reads_a_private_room_from_the_invitation_on(
    store_url: str,
) -> None:
    store = await opened(store_url)
    node = Node(store)
    try:
        ann, bob = node.connect("ann"), node.connect("bob")
        den = await make_den(node, ann)
        await node.answer(ann, type="join", room=den)
        for text in ("before1", "before2", "before3"):
            await node.answer(ann, type="say", room=den, text=text, ref=text)
        notice = await node.ask(ann, type="invite", room=den, user="bob")
        assert notice[0]["type"] == "invited"
        assert bob.frames[-1] == {"type": "invitation", "room": den, "by": "ann"}
        for text in ("after4", "after5"):
            await node.answer(ann, type="say", room=den, text=text, ref=text)
        replay = await node.ask(bob, type="join", room=den, since=0)
        texts = [f["text"] for f in replay if f["type"] == "message"]
        assert texts == ["after4", "after5"]
        history = await node.answer(bob, type="history", room=den)
        assert [m["text"] for m in history["messages"]] == ["after4", "after5"]
        old = await node.answer(bob, type="history", room=den, before=4)
        assert old["messages"] == []
        # the owner reads it all, the invitation in its place (id 4); a public room's
        # newcomer reads it from their join on, as an invitee does a private room
        full = await node.answer(ann, type="history", room=den)
        assert [(m["type"], m["id"]) for m in full["messages"]] == [
            ("message", 1),
            ("message", 2),
            ("message", 3),
            ("member", 4),
            ("message", 5),
            ("message", 6),
        ]
        assert full["messages"][3]["event"] == "invited"
        assert (full["messages"][3]["user"], full["messages"][3]["by"]) == (
            "bob",
            "ann",
        )
        await node.answer(ann, type="join", room="plaza")
        await node.answer(ann, type="say", room="plaza", text="old news", ref="p")
        cy = node.connect("cy")
        await node.answer(cy, type="join", room="plaza")
        public = await node.answer(cy, type="history", room="plaza")
        assert public["messages"] == []
        mine = await node.answer(ann, type="history", room="plaza")
        assert [(m["type"], m["id"]) for m in mine["messages"]] == [
            (
                "message",
                2,
            ),  # after ann's own first join of plaza (1), where she reads from
            ("member", 3),  # cy's
        ]
    finally:
        await node.handler.close()
        await store.close()


@pytest.mark.parametrize("first_on", ["a", "b"])
async def test_an_invitation_on_one_node_opens_the_door_on_another(
    store_url: str, first_on: str
) -> None:
    """Node B has already answered bob "no such room" (and must not remember it) when node A
    takes the invitation; bob joins on B and reads what is said on A."""
    store = await opened(store_url)
    a, b = Node(store), Node(store)
    try:
        ann = a.connect("ann")
        den = await make_den(a, ann)
        bob = b.connect("bob")
        if first_on == "b":
            assert (
                kind_of(await b.answer(bob, type="join", room=den)) == chat.NO_SUCH_ROOM
            )
        await a.answer(ann, type="invite", room=den, user="bob")
        assert kind_of(await b.answer(bob, type="join", room=den)) == "joined"
        assert (
            kind_of(await b.answer(bob, type="say", room=den, text="hi", ref="h"))
            == "ack"
        )
        history = await a.answer(ann, type="join", room=den, since=0)
        assert history["type"] == "joined" and history["last_id"] == 2  # invitation, hi
    finally:
        await a.handler.close()
        await b.handler.close()
        await store.close()


async def test_say_reads_no_membership_and_a_join_reads_it_once_after_the_last_id(
    tmp_path: Path,
) -> None:
    """The hot path stays local: a joined connection's ``say`` asks the store nothing about
    membership. A join may be let in on a membership this node has seen (the invitation
    here), but it is read from the store once the room's last id is: a kick stored on
    another node since cannot let a kicked user read on. A non-member is read every time."""
    store = await opened(tmp_path)
    node = Node(store)
    reads: list[tuple[str, str]] = []
    real = store.membership

    async def counted(room: str, user: str):  # type: ignore[no-untyped-def]
        reads.append((room, user))
        return await real(room, user)

    store.membership = counted  # type: ignore[method-assign]
    try:
        ann, bob = node.connect("ann"), node.connect("bob")
        den = await make_den(node, ann)
        await node.answer(ann, type="invite", room=den, user="bob")
        reads.clear()
        assert kind_of(await node.answer(bob, type="join", room=den)) == "joined"
        assert reads == [(den, "bob")]  # the read after the last id
        for n in range(5):
            assert (
                kind_of(
                    await node.answer(bob, type="say", room=den, text="x", ref=f"{n}")
                )
                == "ack"
            )
        assert len(reads) == 1
        again = node.connect("bob")
        assert kind_of(await node.answer(again, type="join", room=den)) == "joined"
        assert len(reads) == 2
        cy = node.connect("cy")
        for _ in range(2):
            assert (
                kind_of(await node.answer(cy, type="join", room=den))
                == chat.NO_SUCH_ROOM
            )
        assert reads[2:] == [(den, "cy"), (den, "cy")]
    finally:
        await node.handler.close()
        await store.close()


def test_the_membership_cache_is_bounded_and_keyed_by_the_name_rule() -> None:
    from rawws.chat.doors import MembershipCache
    from rawws.store.base import Membership

    cache = MembershipCache(size=2)
    for n in range(3):
        cache.put("Ann", Membership(f"r{n}", "private", "member", n))
    assert cache.get("r0", "ann") is None  # the oldest went first
    assert cache.get("r2", "ANN") == Membership("r2", "private", "member", 2)
    cache.evict("r2", "aNN")
    assert cache.get("r2", "ann") is None


async def test_a_failed_membership_read_answers_unavailable_and_the_join_can_be_sent_again(
    tmp_path: Path,
) -> None:
    store = await opened(tmp_path)
    node = Node(store)
    real = store.membership

    async def failing(room: str, user: str):  # type: ignore[no-untyped-def]
        raise RuntimeError("the database went away")

    try:
        ann, bob = node.connect("ann"), node.connect("bob")
        den = await make_den(node, ann)
        await node.answer(ann, type="invite", room=den, user="bob")
        fresh = Node(store)  # a node whose cache has not seen bob
        bob = fresh.connect("bob")
        store.membership = failing  # type: ignore[method-assign]
        refused = await fresh.answer(bob, type="join", room=den, ref="j")
        assert (refused["code"], refused["ref"]) == (chat.UNAVAILABLE, "j")
        store.membership = real  # type: ignore[method-assign]
        assert kind_of(await fresh.answer(bob, type="join", room=den)) == "joined"
        await fresh.handler.close()
    finally:
        await node.handler.close()
        await store.close()


async def test_a_user_owns_at_most_max_owned_rooms(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``create`` past the cap is ``owner_limit`` and makes nothing; handing a room over frees one."""
    monkeypatch.setattr("rawws.chat.doors.MAX_OWNED_ROOMS", 3)
    store = await opened(store_url)
    node = Node(store)
    try:
        ann = node.connect("ann")
        made = [await make_den(node, ann) for _ in range(2)]
        plaza = await node.answer(ann, type="create", room="plaza", kind="public")
        assert plaza["type"] == "created"
        refused = await node.answer(ann, type="create", room="den", kind="private")
        assert kind_of(refused) == chat.OWNER_LIMIT
        refused = await node.answer(ann, type="create", room="agora", kind="public")
        assert kind_of(refused) == chat.OWNER_LIMIT
        assert await store.room_info("agora") is None
        assert await store.owned_rooms("ANN") == 3
        # bob may still make his own; ann hands one over and may make one more
        assert (
            await node.answer(
                node.connect("bob"), type="create", room="agora", kind="public"
            )
        )["type"] == "created"
        await node.answer(ann, type="invite", room=made[0], user="bob")
        handed = await node.answer(
            ann, type="role", room=made[0], user="bob", role="owner"
        )
        assert handed["type"] == "moderated"
        assert (
            kind_of(await node.answer(ann, type="create", room="den", kind="private"))
            == "created"
        )
    finally:
        await node.handler.close()
        await store.close()
