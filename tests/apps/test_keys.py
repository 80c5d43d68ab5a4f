"""API keys: their format, reading a presented one, the rooms a key reaches, the settings
`rawws api-key create` accepts, the store's rows and each node's one-second cache."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawws.apps.key_book import KeyBook
from rawws.apps.keys import (
    SCOPES,
    ApiKey,
    hash_secret,
    key_settings_problem,
    new_key,
    parse_presented,
    room_matches,
    secret_matches,
)
from rawws.store import SqlStore
from rawws.store.api_keys import KeyNameTaken
from rawws.store.schema import api_keys
from tests.support.helpers import SECRET, claims, hs256

KEY_FORMAT = re.compile(r"rwk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")
ROOM_CHARS = string.ascii_lowercase + string.digits + "_-."


def test_a_new_key_is_shown_in_its_format_and_read_back() -> None:
    shown, key_id, secret_hash = new_key()
    assert KEY_FORMAT.fullmatch(shown)
    parsed = parse_presented(shown)
    assert parsed is not None and parsed[0] == key_id
    assert hash_secret(parsed[1]) == secret_hash
    assert secret_hash not in shown and parsed[1] not in secret_hash
    key = ApiKey(key_id, "bot", secret_hash, frozenset(SCOPES))
    assert secret_matches(key, parsed[1])
    assert not secret_matches(key, new_key()[0][-43:])


@given(st.text(max_size=120))
def test_only_a_key_shaped_token_is_read_as_one(token: str) -> None:
    parsed = parse_presented(token)
    assert (parsed is not None) == bool(KEY_FORMAT.fullmatch(token))
    if parsed is not None:
        assert token == f"rwk_{parsed[0]}_{parsed[1]}"


@given(st.integers(min_value=0, max_value=2**31))
def test_a_users_jwt_is_never_read_as_a_key(offset: int) -> None:
    token = hs256(claims(now=1_700_000_000.0 + offset, sub="bot"), SECRET)
    assert parse_presented(token) is None
    assert parse_presented(f"rwk_{token}") is None


@given(
    st.lists(st.text(ROOM_CHARS, min_size=1, max_size=8), max_size=4),
    st.text(ROOM_CHARS, min_size=1, max_size=12),
)
def test_a_room_matches_a_name_exactly_or_a_prefix_with_a_star(
    names: list[str], room: str
) -> None:
    assert room_matches(names, room) == (room in names)
    prefixes = [f"{name}*" for name in names]
    assert room_matches(prefixes, room) == any(room.startswith(n) for n in names)
    key = ApiKey("0" * 12, "bot", "", frozenset(), tuple(names))
    assert key.reaches(room) == (not names or room in names)


@given(st.text(max_size=40))
def test_a_keys_name_follows_the_user_name_rules(name: str) -> None:
    problem = key_settings_problem(name, ["publish"], [], 1.0, 1)
    valid = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{2,31}", name) is not None
    assert (problem is None) == valid


@pytest.mark.parametrize(
    ("scopes", "rooms", "per_s", "burst", "fine"),
    [
        (["publish"], [], 50.0, 100, True),
        (
            ["publish", "read", "rooms", "users"],
            ["news", "stocks-*", "den.abcdefgh"],
            1.0,
            1,
            True,
        ),
        ([], [], 50.0, 100, False),
        (["write"], [], 50.0, 100, False),
        (["publish"], ["News"], 50.0, 100, False),
        (["publish"], ["a b"], 50.0, 100, False),
        (["publish"], ["news*x"], 50.0, 100, False),
        (["publish"], ["*"], 50.0, 100, False),  # every room: no --room
        (["publish"], [], 0.0, 100, False),
        (["publish"], [], float("nan"), 100, False),
        (["publish"], [], 50.0, 0, False),
    ],
)
def test_a_keys_settings_are_checked(
    scopes: list[str], rooms: list[str], per_s: float, burst: int, fine: bool
) -> None:
    problem = key_settings_problem("bot", scopes, rooms, per_s, burst)
    assert (problem is None) == fine, problem


async def test_the_store_keeps_a_hash_never_the_key(store: SqlStore) -> None:
    shown, key = await store.create_api_key(
        "ticker", frozenset({"publish", "read"}), ("stocks-*",), 5.0, 10, 100.0
    )
    assert KEY_FORMAT.fullmatch(shown) and shown.split("_")[1] == key.id
    read = await store.api_key(key.id)
    assert read == key
    assert read.scopes == {"publish", "read"} and read.rooms == ("stocks-*",)
    async with store.engine.connect() as conn:
        rows = [tuple(row) for row in await conn.execute(api_keys.select())]
    assert shown[-43:] not in repr(rows)
    assert await store.list_api_keys() == [key]
    assert await store.api_key("0" * 12) is None


async def test_a_taken_name_is_refused_in_any_case_even_revoked(
    store: SqlStore,
) -> None:
    await store.create_api_key("Ticker", frozenset({"publish"}), (), 5.0, 10, 1.0)
    with pytest.raises(KeyNameTaken):
        await store.create_api_key("ticker", frozenset({"read"}), (), 5.0, 10, 2.0)
    assert await store.revoke_api_key("TICKER", 3.0)
    assert not await store.revoke_api_key("ticker", 4.0)  # revoked already
    with pytest.raises(KeyNameTaken):
        await store.create_api_key("Ticker", frozenset({"read"}), (), 5.0, 10, 5.0)
    (key,) = await store.list_api_keys()
    assert key.revoked_at == 3.0


async def test_a_node_reads_a_key_again_after_a_second(store: SqlStore) -> None:
    """Cached for ``ttl_s``: a revocation is seen once the entry expires, never before."""
    _, key = await store.create_api_key("bot", frozenset({"publish"}), (), 5, 10, 1.0)
    now = [0.0]
    book = KeyBook(store.api_key, ttl_s=1.0, clock=lambda: now[0])
    assert (await book.lookup(key.id)) == key
    await store.revoke_api_key("bot", 2.0)
    now[0] = 0.99
    cached = await book.lookup(key.id)
    assert cached is not None and cached.revoked_at is None and book.reads == 1
    now[0] = 1.0
    fresh = await book.lookup(key.id)
    assert fresh is not None and fresh.revoked_at == 2.0 and book.reads == 2


@given(st.lists(st.sampled_from([f"{n:012x}" for n in range(8)]), max_size=60))
async def test_the_cache_is_bounded(ids: list[str]) -> None:
    async def read(key_id: str) -> ApiKey | None:
        return None

    book = KeyBook(read, max_keys=3, clock=lambda: 0.0)
    for key_id in ids:
        assert await book.lookup(key_id) is None
        assert len(book._cache) <= 3
