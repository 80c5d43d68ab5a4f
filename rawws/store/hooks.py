"""After-hooks waiting to be delivered (``hook_deliveries``): ``SqlStore`` inherits these from
``HookDeliveriesSql``.

A delivery is written before it is sent, so a node that dies meanwhile loses nothing: any node's
delivery loop (``rawws.accounts.hook_deliveries``) claims what is due. A claim is a compare-and-set
on the row's ``due_at`` and ``attempts`` as they were read, in one ``UPDATE``: of two nodes that read
the same row, one updates it and the other updates nothing, so one delivery is not sent from two
nodes at once; the claim moves ``due_at`` past the time a send may take, so a node that dies while
sending leaves a row another node retries later, with the same id (the app dedups by it).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from rawws.store.schema import hook_deliveries


@dataclass(frozen=True, slots=True)
class HookDelivery:
    """One claimed delivery: its id (``X-Rawws-Delivery``), kind, the exact body, the tries so far (this one
    included)."""

    id: str
    kind: str
    body: str
    attempts: int


class HookDeliveriesSql:
    """Mixed into ``SqlStore``: the after-hooks' queue over its ``engine``."""

    engine: AsyncEngine

    async def add_hook_delivery(
        self, delivery_id: str, kind: str, body: str, due_at: float, expires_at: float
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                hook_deliveries.insert().values(
                    id=delivery_id,
                    kind=kind,
                    body=body,
                    attempts=0,
                    due_at=due_at,
                    expires_at=expires_at,
                )
            )

    async def claim_hook_deliveries(
        self, now: float, lease_s: float, limit: int
    ) -> tuple[list[HookDelivery], int]:
        """The deliveries due at ``now`` this node won (each now due again after ``lease_s``), and how many
        expired ones were dropped."""
        async with self.engine.begin() as conn:
            expired = (
                await conn.execute(
                    hook_deliveries.delete().where(hook_deliveries.c.expires_at <= now)
                )
            ).rowcount
            rows = (
                await conn.execute(
                    sa.select(
                        hook_deliveries.c.id,
                        hook_deliveries.c.kind,
                        hook_deliveries.c.body,
                        hook_deliveries.c.attempts,
                        hook_deliveries.c.due_at,
                    )
                    .where(hook_deliveries.c.due_at <= now)
                    .order_by(hook_deliveries.c.due_at)
                    .limit(limit)
                )
            ).all()
        claimed: list[HookDelivery] = []
        for delivery_id, kind, body, attempts, due_at in rows:
            async with self.engine.begin() as conn:
                won = (
                    await conn.execute(
                        hook_deliveries.update()
                        .where(
                            hook_deliveries.c.id == delivery_id,
                            hook_deliveries.c.due_at == due_at,
                            hook_deliveries.c.attempts == attempts,
                        )
                        .values(due_at=now + lease_s, attempts=attempts + 1)
                    )
                ).rowcount
            if won == 1:
                claimed.append(HookDelivery(delivery_id, kind, body, attempts + 1))
        return claimed, max(expired or 0, 0)

    async def retry_hook_delivery(self, delivery_id: str, due_at: float) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                hook_deliveries.update()
                .where(hook_deliveries.c.id == delivery_id)
                .values(due_at=due_at)
            )

    async def finish_hook_delivery(self, delivery_id: str) -> None:
        """The app acknowledged it: the row goes."""
        async with self.engine.begin() as conn:
            await conn.execute(
                hook_deliveries.delete().where(hook_deliveries.c.id == delivery_id)
            )

    async def hook_deliveries_waiting(self) -> int:
        """How many after-hooks are not yet acknowledged (none once the app took them all)."""
        async with self.engine.connect() as conn:
            count = (
                await conn.execute(
                    sa.select(sa.func.count()).select_from(hook_deliveries)
                )
            ).scalar_one()
        return int(count)
