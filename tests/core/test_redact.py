"""The URL redactor: a secret in any place a driver reads one from never survives it.

Secrets are drawn from characters the rest of the generated URL never uses (upper-case letters,
non-ASCII text and the delimiters a raw password may hold), so any piece of a secret left in the
output is visible as such a character, not only the secret whole.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawws.core.redact import HIDDEN, redact_url

SCHEMES = ["redis", "rediss", "unix", "postgresql+asyncpg", "sqlite+aiosqlite"]
PLAIN = "abcdefghijklmnopqrstuvwxyz0123456789.-_"
SECRET_PARAMETERS = [
    "password",
    "passwd",
    "pass",
    "pwd",
    "sslpassword",
    "token",
    "access_token",
    "secret",
    "api_key",
    "auth",
]
#: What a secret is made of: nothing the rest of a generated URL holds, but for the delimiters a
#: password may hold raw in the user information.
MARKED = "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + "éß€中🔑"
RAW_USERINFO_EXTRA = "@:/?#&=;%"

plain = st.text(PLAIN, min_size=1, max_size=10)
secret_chars = st.text(MARKED, min_size=1, max_size=20)


def leaked(output: str) -> list[str]:
    """The characters of ``output`` that only a secret holds."""
    return [c for c in output.replace(HIDDEN, "") if c in MARKED or c == "%"]


@st.composite
def location(draw: st.DrawFn, scheme: str) -> str:
    if scheme == "unix":
        return "/" + "/".join(draw(st.lists(plain, min_size=1, max_size=3))) + ".sock"
    host = draw(plain)
    port = draw(st.one_of(st.none(), st.integers(1, 65535)))
    return host + (f":{port}" if port else "") + "/" + draw(plain)


@st.composite
def others(draw: st.DrawFn) -> list[str]:
    """Harmless parameters: ``db=0``, ``ssl=true``…"""
    names = st.sampled_from(["db", "ssl", "timeout", "encoding", "user"])
    return [f"{draw(names)}={draw(plain)}" for _ in range(draw(st.integers(0, 3)))]


@st.composite
def url_and_secret(draw: st.DrawFn) -> tuple[str, str]:
    scheme = draw(st.sampled_from(SCHEMES))
    secret = draw(secret_chars)
    params = draw(others())
    where = draw(st.sampled_from(["userinfo", "userinfo-raw", "query", "query-raw"]))
    if where == "userinfo-raw":  # as typed: '@', ':', '/', '?'… unencoded
        extra = draw(st.text(RAW_USERINFO_EXTRA, max_size=4))
        secret = draw(st.permutations(secret + extra))
        secret = "".join(secret)
    written = secret if where.endswith("raw") else quote(secret, safe="")
    user = draw(st.one_of(st.just(""), plain))
    if where.startswith("userinfo"):
        authority = f"{user}:{written}@"
    else:
        authority = f"{user}@" if user else ""
        name = draw(st.sampled_from(SECRET_PARAMETERS))
        if where == "query-raw":  # unencoded: a raw '&' or ';' inside the value
            written = "".join(
                draw(st.permutations(secret + draw(st.text("&;", max_size=2))))
            )
        params.insert(draw(st.integers(0, len(params))), f"{name}={written}")
    query = ("?" + "&".join(params)) if params else ""
    url = f"{scheme}://{authority}{draw(location(scheme))}{query}"
    return url, written


@given(url_and_secret())
def test_no_piece_of_a_secret_survives(case: tuple[str, str]) -> None:
    url, written = case
    redacted = redact_url(url)
    assert written not in redacted
    assert leaked(redacted) == [], (url, redacted)
    assert redact_url(redacted) == redacted  # and what it shows is already safe


@given(st.sampled_from(SCHEMES), plain, others())
def test_a_url_without_a_secret_is_unchanged(
    scheme: str, host: str, params: list[str]
) -> None:
    url = f"{scheme}://{host}/0" + ("?" + "&".join(params) if params else "")
    assert redact_url(url) == url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "unix:///run/redis.sock?password=SECRET",
            "unix:///run/redis.sock?password=***",
        ),
        ("redis://:SECRET@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://default:SE@CR:ET@h/0", "redis://default:***@h/0"),
        (
            "postgresql+asyncpg://rawws@db/rawws?PassWord=SECRET&sslpassword=S2",
            "postgresql+asyncpg://rawws@db/rawws?PassWord=***&sslpassword=***",
        ),
        ("unix:///s.sock?db=0&pass%77ord=SECRET", "unix:///s.sock?db=0&pass%77ord=***"),
        ("unix:///s.sock?password=SE&CRET&db=1", "unix:///s.sock?password=***&db=1"),
        ("not a url?token=SECRET", "not a url?token=***"),
        ("nonsense", "nonsense"),
    ],
)
def test_examples(url: str, shown: str) -> None:
    assert redact_url(url) == shown
