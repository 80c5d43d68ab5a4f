"""The ``redis+sentinel://`` bus URL: what it names, and a one-line refusal for what it cannot."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawws.bus.redis import BusUnavailable, check_bus_url, reach
from rawws.bus.sentinel import SentinelTarget, parse_sentinel_url
from rawws.errors import SettingError
from testkit import free_port
from tests.support.redis_sentinel import SERVICE, RedisSentinels

SECRET = "SECRET-5eb63bbbe01e"


def test_the_full_form() -> None:
    url = (
        f"redis+sentinel://:{SECRET}@10.0.0.1:26379,sentinel-2.example:26380,[::1]:5000"
        f"/chat-bus/3?sentinel_password=s%40p"
    )
    assert parse_sentinel_url(url) == SentinelTarget(
        sentinels=(("10.0.0.1", 26379), ("sentinel-2.example", 26380), ("::1", 5000)),
        service="chat-bus",
        db=3,
        password=SECRET,
        sentinel_password="s@p",
    )
    assert check_bus_url(url) == url


def test_the_short_form_takes_the_sentinel_port_and_database_0() -> None:
    assert parse_sentinel_url("redis+sentinel://s1,s2/bus") == SentinelTarget(
        sentinels=(("s1", 26379), ("s2", 26379)), service="bus"
    )
    assert parse_sentinel_url("redis+sentinel://user:pw@s1/bus/") == SentinelTarget(
        sentinels=(("s1", 26379),), service="bus", username="user", password="pw"
    )


hosts = st.lists(
    st.tuples(
        st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}", fullmatch=True),
        st.integers(1, 65535),
    ),
    min_size=1,
    max_size=4,
)
services = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp")), min_size=1
).filter(lambda s: s.isprintable() and not any(c.isspace() for c in s))


@given(
    hosts,
    services,
    st.integers(0, 15),
    st.text(min_size=1, max_size=30),
    st.none() | st.text(max_size=30),
)
def test_what_a_sentinel_url_names_comes_back_from_it(
    sentinels: list[tuple[str, int]],
    service: str,
    db: int,
    password: str,
    sentinel_password: str | None,
) -> None:
    url = (
        f"redis+sentinel://:{quote(password, safe='')}@"
        + ",".join(f"{host}:{port}" for host, port in sentinels)
        + f"/{quote(service, safe='')}/{db}"
    )
    if sentinel_password is not None:
        url += f"?sentinel_password={quote(sentinel_password, safe='')}"
    assert parse_sentinel_url(url) == SentinelTarget(
        tuple(sentinels), service, db, None, password, sentinel_password
    )
    assert check_bus_url(url) == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis+sentinel://:{s}@s1:26379", "names no service"),
        ("redis+sentinel://:{s}@s1:26379/", "names no service"),
        ("redis+sentinel://:{s}@/bus", "host list has an empty one"),
        ("redis+sentinel://:{s}@s1,,s2/bus", "host list has an empty one"),
        ("redis+sentinel://:{s}@s1:26379,/bus", "host list has an empty one"),
        ("redis+sentinel://:{s}@s1:port/bus", "host list has 's1:port'"),
        ("redis+sentinel://:{s}@s1:0/bus", "host list has 's1:0'"),
        ("redis+sentinel://:{s}@s1:65536/bus", "host list has 's1:65536'"),
        ("redis+sentinel://:{s}@s 1/bus", "host list has 's 1'"),
        ("redis+sentinel://:{s}@[::1/bus", "host list has '[::1'"),
        ("redis+sentinel://:{s}@s1/bus/zero", "database must be a number"),
        ("redis+sentinel://:{s}@s1/bus/0/1", "database must be a number"),
        ("redis+sentinel://:{s}@s1/b%20us", "service name has a space"),
        ("redis+sentinel://:{s}@s1/bus?password={s}", "takes no parameter 'password'"),
        ("redis+sentinel://:{s}@s1/bus?sentinel_password", "query is malformed"),
        ("redis+sentinel://:{s}@s1/bus#x", "has no #fragment"),
    ],
)
def test_a_bad_sentinel_url_is_one_line_without_its_password(
    url: str, reason: str
) -> None:
    url = url.format(s=SECRET)
    with pytest.raises(SettingError) as refused:
        check_bus_url(url)
    line = str(refused.value)
    assert reason in line and "\n" not in line, line
    assert SECRET not in line and "***" in line, line


def test_the_plain_urls_refusal_names_the_sentinel_scheme() -> None:
    with pytest.raises(SettingError, match="redis\\+sentinel://"):
        check_bus_url("sentinel://s1/bus")


async def test_no_sentinel_answering_refuses_the_start() -> None:
    where = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    with pytest.raises(BusUnavailable) as refused:
        await reach(f"redis+sentinel://:{SECRET}@{where}/bus/0", 0.5)
    assert refused.value.reason == (
        f"no sentinel answered at {where}: is redis-sentinel running there?"
    )
    assert SECRET not in str(refused.value)


async def test_a_service_the_sentinels_do_not_know_refuses_the_start(
    redis_sentinels: RedisSentinels,
) -> None:
    unknown = redis_sentinels.url.replace(f"/{SERVICE}/", "/no-such-service/")
    with pytest.raises(BusUnavailable) as refused:
        await reach(unknown)
    assert refused.value.reason.endswith(
        "know no primary that is up for the service 'no-such-service':"
        " is it the name in their 'sentinel monitor'?"
    )
    assert redis_sentinels.password not in str(refused.value)
    await reach(redis_sentinels.url)  # the service they monitor is there


async def test_a_wrong_server_password_behind_the_sentinels_is_said(
    redis_sentinels: RedisSentinels,
) -> None:
    wrong = redis_sentinels.url.replace(redis_sentinels.password, SECRET)
    with pytest.raises(BusUnavailable) as refused:
        await reach(wrong)
    assert "Redis refused the URL's password" in refused.value.reason
    assert SECRET not in str(refused.value)
