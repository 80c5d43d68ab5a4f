"""Room kinds and stored membership in SQL: ``SqlStore`` inherits these from ``RoomsSql``.

Membership is in the database, not in a node's memory, so an invitation made on one
node opens the door on every other. A member's ``since_id`` is read from the room's
``last_id`` by the same statement that inserts the membership, so it is a point in the
room's ordered stream: every message numbered after it is one stored after they joined.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from rawws.store.base import (
    BANNED,
    DIRECT,
    FEED,
    JOINED,
    MEMBER,
    MODERATOR,
    OWNER,
    PUBLIC,
    MemberEvent,
    Membership,
    MembershipChanged,
    RoomInfo,
    RoomView,
    StoredMessage,
)
from rawws.store.names import username_key
from rawws.store.reads import marker_in_force, unread_count
from rawws.store.schema import messages, room_members, rooms, users

#: The most rooms ``visible_rooms`` lists: an answer fits one frame however many rooms exist.
MAX_VISIBLE_ROOMS = 500


def _view(row: Any) -> RoomView:
    """A ``visible_rooms`` row: a member's view has their marker and unread count."""
    if row.role is None:
        return RoomView(row.name, row.kind, None)
    last_read, unread = int(row.last_read), int(row.unread)
    return RoomView(row.name, row.kind, row.role, None, last_read, unread)


class RoomsSql:
    """The ``Rooms`` part of the store."""

    engine: AsyncEngine

    async def create_room(self, room: str, kind: str, owner: str) -> Membership | None:
        """Make ``room`` of ``kind`` with ``owner`` its owner member; None when the name is taken.

        A public room used before (a message stored in it) is taken; one only ever joined
        has no row yet and may still be made, by whoever asks first.
        """
        owner_key = username_key(owner)
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    rooms.insert().values(
                        name=room, last_id=0, kind=kind, owner=owner_key
                    )
                )
                await conn.execute(
                    room_members.insert().values(
                        room=room,
                        user_key=owner_key,
                        role=OWNER,
                        since_id=0,
                        added_by=owner_key,
                        added_at=time.time(),
                    )
                )
        except IntegrityError:
            return None
        return Membership(room, kind, OWNER, 0)

    async def add_member(
        self, room: str, user: str, role: str, added_by: str
    ) -> Membership | None:
        """Make ``user`` a member of ``room`` from its last message on; None when there is no such room.

        Already a member: their membership stays as it was (an invitation twice is one).
        """
        key = username_key(user)
        found = await self.membership(room, user)
        if found is not None:
            return found
        select = sa.select(
            rooms.c.name,
            sa.literal(key),
            sa.literal(role),
            rooms.c.last_id,
            sa.literal(username_key(added_by)),
            sa.literal(time.time()),
        ).where(rooms.c.name == room)
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    room_members.insert().from_select(
                        [
                            "room",
                            "user_key",
                            "role",
                            "since_id",
                            "added_by",
                            "added_at",
                        ],
                        select,
                    )
                )
        except IntegrityError:
            pass  # invited at the same moment by someone else: that membership stands
        return await self.membership(room, user)

    def _insert_room_if_missing(self, room: str) -> sa.Executable:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects import postgresql

            return (
                postgresql.insert(rooms)
                .values(name=room, last_id=0)
                .on_conflict_do_nothing(index_elements=["name"])
            )
        from sqlalchemy.dialects import sqlite

        return (
            sqlite.insert(rooms)
            .values(name=room, last_id=0)
            .on_conflict_do_nothing(index_elements=["name"])
        )

    async def apply_member_event(self, event: MemberEvent) -> StoredMessage:
        """Store ``event`` as the room's next id and change the stored membership, in one transaction.

        The id comes from the same ``UPDATE rooms … RETURNING`` as a message's, which also
        locks the room's row: events and messages of one room are numbered one at a time,
        so the membership a node reads is the one in force at the event's id. A new member's
        ``since_id`` is the event's own id: they are sent what comes after it. The roles the
        event was judged on (``event.expect``) are read again under that lock.
        """
        key = username_key(event.target)
        async with self.engine.begin() as conn:
            await conn.execute(self._insert_room_if_missing(event.room))
            event_id = (
                await conn.execute(
                    rooms.update()
                    .where(rooms.c.name == event.room)
                    .values(last_id=rooms.c.last_id + 1)
                    .returning(rooms.c.last_id)
                )
            ).scalar_one()
            for user, role in event.expect:  # read under the room's lock just taken
                now = await conn.execute(
                    sa.select(room_members.c.role).where(
                        room_members.c.room == event.room,
                        room_members.c.user_key == username_key(user),
                    )
                )
                if now.scalar_one_or_none() != role:
                    raise MembershipChanged(f"{user}'s role in {event.room} changed")
            await conn.execute(
                messages.insert().values(
                    room=event.room,
                    id=event_id,
                    user=event.actor,
                    text=event.detail,
                    ts=event.ts,
                    kind=event.kind,
                    target=event.target,
                )
            )
            row = sa.and_(
                room_members.c.room == event.room, room_members.c.user_key == key
            )
            if event.role is None:
                await conn.execute(room_members.delete().where(row))
            else:
                changed = await conn.execute(
                    room_members.update()
                    .where(row)
                    .values(role=event.role, muted_until=event.muted_until)
                )
                if not changed.rowcount:
                    await conn.execute(
                        room_members.insert().values(
                            room=event.room,
                            user_key=key,
                            role=event.role,
                            since_id=event_id,
                            added_by=username_key(event.actor),
                            added_at=event.ts,
                            muted_until=event.muted_until,
                        )
                    )
            if event.demote is not None:
                await conn.execute(
                    room_members.update()
                    .where(
                        room_members.c.room == event.room,
                        room_members.c.user_key == username_key(event.demote),
                    )
                    .values(role=MODERATOR)
                )
            if event.role == OWNER:
                await conn.execute(
                    rooms.update().where(rooms.c.name == event.room).values(owner=key)
                )
        return StoredMessage(
            event.room,
            int(event_id),
            event.actor,
            event.detail,
            event.ts,
            event.kind,
            event.target,
        )

    async def join_public(
        self, room: str, user: str, ts: float
    ) -> tuple[Membership, StoredMessage | None]:
        """``user``'s membership of the public room ``room``: stored with a ``joined`` event
        (the room's next id, their ``since_id``) unless they have a row already (a member, or banned).

        The room's row is locked first (an update that changes nothing) and the membership
        read under that lock, so two first joins at once store one event: the second finds
        the first's row. The event is returned to be published like a message.
        """
        key = username_key(user)
        mine = sa.and_(room_members.c.room == room, room_members.c.user_key == key)
        async with self.engine.begin() as conn:
            await conn.execute(self._insert_room_if_missing(room))
            locked = (
                await conn.execute(
                    rooms.update()
                    .where(rooms.c.name == room)
                    .values(last_id=rooms.c.last_id)
                    .returning(rooms.c.kind, rooms.c.last_id)
                )
            ).one()
            found = (
                await conn.execute(
                    sa.select(
                        room_members.c.role,
                        room_members.c.since_id,
                        room_members.c.muted_until,
                        room_members.c.last_read,
                    ).where(mine)
                )
            ).first()
            kind = (
                locked.kind
            )  # a feed is joined as a public room is (read only: chat.access)
            if kind not in (
                PUBLIC,
                FEED,
            ):  # public and private names never meet: a bug if so
                raise RuntimeError(f"{room} is not a public room")
            if found is not None:  # a member already, or banned: no event
                since, read = int(found.since_id), int(found.last_read)
                return Membership(
                    room, kind, found.role, since, found.muted_until, read
                ), None
            event_id = int(locked.last_id) + 1
            await conn.execute(
                rooms.update().where(rooms.c.name == room).values(last_id=event_id)
            )
            await conn.execute(
                messages.insert().values(
                    room=room,
                    id=event_id,
                    user=user,
                    text="",
                    ts=ts,
                    kind=JOINED,
                    target=user,
                )
            )
            await conn.execute(
                room_members.insert().values(
                    room=room,
                    user_key=key,
                    role=MEMBER,
                    since_id=event_id,
                    added_by=key,
                    added_at=ts,
                )
            )
        joined = StoredMessage(room, event_id, user, "", ts, JOINED, user)
        return Membership(room, kind, MEMBER, event_id), joined

    async def owned_rooms(self, user: str) -> int:
        """How many rooms ``user`` owns now (made with ``create``, or handed over to them)."""
        query = sa.select(sa.func.count()).select_from(rooms)
        query = query.where(rooms.c.owner == username_key(user))
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def room_info(self, room: str) -> RoomInfo | None:
        query = sa.select(rooms.c.kind, rooms.c.owner).where(rooms.c.name == room)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else RoomInfo(room, row.kind, row.owner)

    async def membership(self, room: str, user: str) -> Membership | None:
        """``user``'s stored row in ``room`` (its role may be ``BANNED``: no membership, a refusal)."""
        query = (
            sa.select(
                rooms.c.kind,
                room_members.c.role,
                room_members.c.since_id,
                room_members.c.muted_until,
                room_members.c.last_read,
            )
            .join(room_members, room_members.c.room == rooms.c.name)
            .where(rooms.c.name == room, room_members.c.user_key == username_key(user))
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        since, read = int(row.since_id), int(row.last_read)
        return Membership(room, row.kind, row.role, since, row.muted_until, read)

    async def visible_rooms(self, user: str) -> list[RoomView]:
        """Every public room that has a row (made, or written in), and every room ``user`` belongs to;
        where a member, their read marker in force and unread count, in the same one query."""
        key = username_key(user)
        mine = sa.and_(room_members.c.user_key == key, room_members.c.role != BANNED)
        query = (
            sa.select(
                rooms.c.name,
                rooms.c.kind,
                room_members.c.role,
                marker_in_force().label("last_read"),
                unread_count(rooms.c.name, key, rooms.c.last_id).label("unread"),
            )
            .outerjoin(room_members, sa.and_(room_members.c.room == rooms.c.name, mine))
            .where(
                sa.or_(
                    rooms.c.kind.in_((PUBLIC, FEED)), room_members.c.role.is_not(None)
                )
            )
            .order_by(rooms.c.name)
            .limit(MAX_VISIBLE_ROOMS)
        )
        async with self.engine.connect() as conn:
            views = [_view(row) for row in await conn.execute(query)]
            direct = [v.room for v in views if v.kind == DIRECT]
            if not direct:
                return views
            others = sa.select(room_members.c.room, users.c.username).join(
                users, users.c.username_key == room_members.c.user_key
            )
            others = others.where(
                room_members.c.room.in_(direct),
                room_members.c.user_key != username_key(user),
            )
            other = {row.room: row.username for row in await conn.execute(others)}
        return [
            dataclasses.replace(v, user=other.get(v.room)) if v.kind == DIRECT else v
            for v in views
        ]

    async def open_direct(self, room: str, user: str, other: str) -> Membership:
        """The direct room ``room`` of ``user`` and ``other``, made with both as members if it
        is not there yet; ``user``'s membership of it.

        Made once whoever asks, even both at the same moment: the room's row and both
        memberships go in one transaction, and the rooms table's primary key lets only one
        such transaction commit; the other's insert fails and it reads what the first made.
        """
        now = time.time()
        keys = (username_key(user), username_key(other))
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    rooms.insert().values(name=room, last_id=0, kind=DIRECT, owner=None)
                )
                await conn.execute(
                    room_members.insert(),
                    [
                        dict(room=room, user_key=key, role=MEMBER, since_id=0)
                        | dict(added_by=keys[0], added_at=now)
                        for key in keys
                    ],
                )
        except IntegrityError:
            pass  # made before, or by the other one just now: it stands as made
        found = await self.membership(room, user)
        if (
            found is None
        ):  # their name's earlier holder was erased (``rawws.store.erasure``)
            found = await self._rejoin_direct(room, user)
        if found is None or found.kind != DIRECT:
            raise RuntimeError(f"{room} is not the direct room of its pair")
        return found

    async def _rejoin_direct(self, room: str, user: str) -> Membership | None:
        """A direct room of the pair exists but ``user`` has no row in it: an erasure removed
        the row of the name's earlier holder. The name's new holder becomes a member from the
        room's last id on: nothing said to the erased user is theirs to read."""
        key = username_key(user)
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(rooms.c.kind, rooms.c.last_id).where(rooms.c.name == room)
                )
            ).first()
            if row is None or row.kind != DIRECT:
                return None
            with contextlib.suppress(IntegrityError):  # the same user, twice at once
                async with conn.begin_nested():
                    await conn.execute(
                        room_members.insert().values(
                            room=room,
                            user_key=key,
                            role=MEMBER,
                            since_id=row.last_id,
                            added_by=key,
                            added_at=time.time(),
                        )
                    )
        return await self.membership(room, user)

    async def member_roles(self, room: str) -> dict[str, str]:
        """The stored members of ``room`` (as registered) and their roles."""
        query = (
            sa.select(users.c.username, room_members.c.role)
            .join(users, users.c.username_key == room_members.c.user_key)
            .where(room_members.c.room == room)
        )
        async with self.engine.connect() as conn:
            return {row.username: row.role for row in await conn.execute(query)}
