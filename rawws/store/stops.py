"""The store side of stopping an account: disabled, admin and the ``not_before`` stamp.

A stamp is epoch seconds: every token of the user issued at or before it is refused.
Logout and a password change set it; disabling sets it and revokes every refresh
family in the same transaction, so no login of the user outlives the disable. Every
node polls ``stamps_since`` (an indexed range on ``not_before``) to learn of stamps
set by another node or by `rawws admin`, with or without the bus.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from rawws.store.base import Stamp
from rawws.store.names import username_key
from rawws.store.schema import refresh_tokens, user_named, users


@dataclass(frozen=True, slots=True)
class AccountState:
    """One user's account flags (`rawws admin list`)."""

    username: str
    disabled: bool
    admin: bool
    not_before: float


STEP_S = 0.001  # the least a disable or enable moves a stamp forward


class AccountStops:
    """Mixed into ``SqlStore``: the account-stop queries over its ``engine``."""

    engine: AsyncEngine

    async def stamp_not_before(self, user_id: int, at: float) -> Stamp | None:
        """Refuse every token of the user issued at or before ``at`` (a stamp never moves back).

        The user's stamp as it now stands, or ``None`` when there is no such user.
        """
        async with self.engine.begin() as conn:
            await conn.execute(
                users.update()
                .where(users.c.id == user_id, users.c.not_before < at)
                .values(not_before=at)
            )
            row = (
                await conn.execute(
                    sa.select(
                        users.c.username_key, users.c.not_before, users.c.disabled
                    ).where(users.c.id == user_id)
                )
            ).first()
        return None if row is None else Stamp(*row)

    async def set_disabled(
        self, username: str, disabled: bool, at: float
    ) -> Stamp | None:
        """Disable (every refresh family revoked) or enable, stamped ``at``: the stamp, or ``None``
        when there is no such user."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(users.c.id, users.c.not_before)
                    .where(users.c.username_key == username_key(username))
                    .with_for_update()
                )
            ).first()
            if row is None:
                return None
            # Enabling stamps too: it is how every node's poll hears of it (and no token
            # of a disabled user is worth keeping). Always forward, if only by a millisecond
            # (a clock behind the last stamp): a poll reads only stamps that moved.
            not_before = max(at, float(row.not_before) + STEP_S)
            values = {"disabled": disabled, "not_before": not_before}
            if disabled:
                await conn.execute(
                    refresh_tokens.update()
                    .where(
                        refresh_tokens.c.user_id == row.id,
                        refresh_tokens.c.revoked.is_(False),
                    )
                    .values(revoked=True)
                )
            await conn.execute(
                users.update().where(users.c.id == row.id).values(**values)
            )
            return Stamp(username_key(username), not_before, disabled)

    async def set_admin(self, username: str, admin: bool) -> bool:
        """Grant or revoke server admin; ``False``: no such user. Only `rawws admin` calls it."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                users.update()
                .where(users.c.username_key == username_key(username))
                .values(admin=admin)
            )
            return bool(result.rowcount)

    async def account_state(self, username: str) -> AccountState | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(user_named(username))).first()
        if row is None:
            return None
        return AccountState(row.username, row.disabled, row.admin, row.not_before)

    async def flagged_accounts(self) -> list[AccountState]:
        """Every admin and every disabled user, by name (what `rawws admin list` shows)."""
        query = (
            sa.select(users)
            .where(sa.or_(users.c.admin.is_(True), users.c.disabled.is_(True)))
            .order_by(users.c.username_key)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            AccountState(row.username, row.disabled, row.admin, row.not_before)
            for row in rows
        ]

    async def revoke_family_and_stamp(self, token_hash: str, at: float) -> Stamp | None:
        """Logout: revoke a token's family and stamp its owner ``at``, in one transaction.

        ``None`` when the token is unknown or its family was revoked already (a second
        logout stops nothing more: another device's login since then keeps working).
        """
        async with self.engine.begin() as conn:
            owner = (
                await conn.execute(
                    sa.select(refresh_tokens.c.user_id, refresh_tokens.c.family).where(
                        refresh_tokens.c.token_hash == token_hash
                    )
                )
            ).first()
            if owner is None:
                return None
            user = (
                await conn.execute(
                    sa.select(
                        users.c.username_key, users.c.not_before, users.c.disabled
                    )
                    .where(users.c.id == owner.user_id)
                    .with_for_update()  # ordered with rotations (``SqlStore._lock_user``)
                )
            ).first()
            revoked = await conn.execute(
                refresh_tokens.update()
                .where(
                    refresh_tokens.c.family == owner.family,
                    refresh_tokens.c.revoked.is_(False),
                )
                .values(revoked=True)
            )
            if user is None or not revoked.rowcount:
                return None
            stamp = Stamp(user.username_key, max(at, user.not_before), user.disabled)
            await conn.execute(
                users.update()
                .where(users.c.id == owner.user_id)
                .values(not_before=stamp.not_before)
            )
            return stamp

    async def stamps_since(self, since: float) -> list[Stamp]:
        """Every stamp set after ``since`` (the nodes' poll: an index range, usually empty)."""
        query = sa.select(
            users.c.username_key, users.c.not_before, users.c.disabled
        ).where(users.c.not_before > since)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [Stamp(row.username_key, row.not_before, row.disabled) for row in rows]
