"""The after-hooks' queue in the store: written, claimed by one node only when two race, retried
later, dropped once acknowledged or expired (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rawws.store import open_store, sqlite_url


async def stores(db_url: str | None, tmp_path: Path) -> tuple:
    url = db_url or sqlite_url(str(tmp_path))
    one = await open_store(url, 10.0)
    two = await open_store(url, 10.0)  # a second node on the same database
    return one, two


async def test_two_nodes_never_claim_one_delivery(
    db_url: str | None, tmp_path: Path
) -> None:
    one, two = await stores(db_url, tmp_path)
    try:
        for i in range(40):
            await one.add_hook_delivery(
                f"d{i:02}", "disconnect", "{}", 100.0 + i, 10_000.0
            )
        for now in (
            150.0,
            200.0,
        ):  # a second round: everything claimed is leased, not due
            (a, _), (b, _) = await asyncio.gather(
                one.claim_hook_deliveries(now, 1000.0, 16),
                two.claim_hook_deliveries(now, 1000.0, 16),
            )
            ids_a = {d.id for d in a}
            ids_b = {d.id for d in b}
            assert not ids_a & ids_b
        claimed, _ = await one.claim_hook_deliveries(200.0, 1000.0, 100)
        assert claimed == [] or all(d.attempts == 1 for d in claimed)
        everything, _ = await one.claim_hook_deliveries(5000.0, 1000.0, 100)
        assert len(everything) == 40 and all(d.attempts >= 2 for d in everything)
    finally:
        await one.close()
        await two.close()


async def test_a_retry_is_due_later_and_an_ack_or_expiry_removes_it(
    db_url: str | None, tmp_path: Path
) -> None:
    store, other = await stores(db_url, tmp_path)
    await other.close()
    try:
        await store.add_hook_delivery("a", "disconnect", '{"x":1}', 10.0, 100.0)
        await store.add_hook_delivery("b", "disconnect", "{}", 10.0, 20.0)
        (first, second), expired = await store.claim_hook_deliveries(11.0, 5.0, 10)
        assert expired == 0 and first.body == '{"x":1}' and first.attempts == 1
        await store.retry_hook_delivery("a", 30.0)
        # "b" passed its expiry unacknowledged; "a" is not due yet
        assert await store.claim_hook_deliveries(29.0, 5.0, 10) == ([], 1)
        again, expired = await store.claim_hook_deliveries(30.0, 5.0, 10)
        assert [d.id for d in again] == ["a"] and again[0].attempts == 2
        assert expired == 0
        await store.finish_hook_delivery("a")
        assert await store.hook_deliveries_waiting() == 0
    finally:
        await store.close()
