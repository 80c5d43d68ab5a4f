"""Bad JSON of every kind is a 400 on every ``/auth/*`` route, never a 500.

Found from outside: an array nested thousands deep (``RecursionError``), a
5,000-digit integer (``ValueError``: Python's int-string limit) and a lone
surrogate escape (``"\\ud800"``: a ``str`` that cannot become UTF-8 for hashing)
each answered 500 with a traceback. The routes run here as the server runs them,
on a real SQLite store with real (cheap) argon2.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawws.accounts.passwords import Passwords
from rawws.accounts.routes import Accounts
from rawws.accounts.tokens import Tokens, TokenSettings
from rawws.core.http import Request
from rawws.errors import HttpError
from rawws.store import open_store, sqlite_url

ROUTES = ("register", "login", "refresh", "logout", "change_password")
FIELDS = (
    "username",
    "password",
    "refresh_token",
    "current_password",
    "new_password",
)
PASSWORD = "correct horse battery"

Harness = tuple[asyncio.AbstractEventLoop, Accounts, str]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    loop = asyncio.new_event_loop()
    store = loop.run_until_complete(open_store(sqlite_url(tmp_path / "data")))
    tokens = Tokens(TokenSettings(secret=b"s" * 32))
    accounts = Accounts(
        store,
        Passwords(time_cost=1, memory_kib=8 * 1024, parallelism=1),
        tokens,
        logins_per_user=10**9,
        logins_per_address=10**9,
        registrations_per_address=10**9,
    )
    loop.run_until_complete(
        store.create_user("kate", accounts.passwords.hash(PASSWORD))
    )
    access, _ = tokens.issue("kate")
    try:
        yield loop, accounts, access
    finally:
        accounts.close()
        loop.run_until_complete(store.close())
        loop.close()


def status_of(harness: Harness, route: str, body: bytes) -> int:
    loop, accounts, access = harness
    request = Request(
        method="POST",
        path=f"/auth/{route}",
        query="",
        headers=[
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {access}".encode()),
        ],
        body=body,
        peer="127.0.0.1:5000",
    )
    try:
        return loop.run_until_complete(getattr(accounts, route)(request)).status
    except HttpError as error:
        return error.status


lone_surrogate = st.integers(0xD800, 0xDFFF).map(lambda c: f'"\\u{c:04x}"')
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
).map(json.dumps)
hostile = st.one_of(
    st.integers(1, 20_000).map(lambda n: ("[" * n + "]" * n).encode()),
    st.integers(1, 20_000).map(lambda n: ('{"a":' * n + "1" + "}" * n).encode()),
    st.integers(4_000, 20_000).map(lambda n: ("9" * n).encode()),
    st.integers(4_000, 20_000).map(
        lambda n: ('{"username": ' + "9" * n + "}").encode()
    ),
)
# An object with the routes' own field names, each holding any JSON value (a lone surrogate too).
objects = st.dictionaries(
    st.sampled_from(FIELDS), json_values | lone_surrogate, max_size=5
).map(
    lambda fields: (
        "{" + ",".join(f"{json.dumps(k)}: {v}" for k, v in fields.items()) + "}"
    ).encode()
)
bodies = st.one_of(
    st.binary(max_size=200), json_values.map(str.encode), hostile, objects
)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(route=st.sampled_from(ROUTES), body=bodies)
def test_no_body_earns_a_5xx(harness: Harness, route: str, body: bytes) -> None:
    assert status_of(harness, route, body) < 500


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b"9" * 5_000,
        b'{"username": ' + b"9" * 5_000 + b', "password": "x"}',
        b'{"username": "kate", "password": "\\ud800 long enough"}',
        b'{"refresh_token": "\\udfff"}',
        b'{"current_password": "\\ud800xxxxxxxx", "new_password": "\\ud800yyyyyyyy"}',
        b"[]",
        b'"a string"',
    ],
    ids=[
        "nested",
        "digits",
        "digits-in-object",
        "surrogate-password",
        "surrogate-token",
        "surrogate-passwords",
        "array",
        "string",
    ],
)
def test_the_bodies_found_from_outside_are_400(
    harness: Harness, route: str, body: bytes
) -> None:
    assert status_of(harness, route, body) == 400
