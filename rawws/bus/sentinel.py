"""The bus behind Redis Sentinel: a URL that names sentinels and a service, not one server.

``redis+sentinel://[:PASSWORD@]HOST[:PORT][,HOST[:PORT]…]/SERVICE[/DB][?sentinel_password=…]``

* the hosts are the sentinels (port 26379 unless given), the first that answers is asked;
* ``SERVICE`` is the name in the sentinels' ``sentinel monitor SERVICE …``;
* the user information's password is the Redis servers' (``requirepass``, the same on the
  primary and its replicas), as in a ``redis://`` URL; ``sentinel_password`` is the
  sentinels' own, when they ask for one.

Why a separate URL and not a list of servers: only the sentinels know which server is the
primary now. The clients made here (redis-py's ``Sentinel.master_for``) ask them on every new
connection, so when a primary dies and a replica is promoted, the bus's next connection (its
reconnect after the outage) goes to the promoted one. What the bus lost in between, the nodes
repair from the store, as after any Redis outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

SCHEME = "redis+sentinel"
DEFAULT_PORT = 26379
PARAMETERS = ("sentinel_password",)
FORM = "redis+sentinel://[:password@]host:26379[,host:port…]/service[/db]"

_HOST = re.compile(r"\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9._-]+)")


@dataclass(frozen=True)
class SentinelTarget:
    """What a sentinel URL names: where to ask, for which service, and how to log in."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None


def is_sentinel_url(url: str) -> bool:
    return url.partition("://")[0].lower() == SCHEME


def parse_sentinel_url(url: str) -> SentinelTarget:
    """The target of a ``redis+sentinel://`` URL, else ``ValueError`` with a one-line reason."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() != SCHEME:
        raise ValueError(f"a sentinel URL starts with {SCHEME}://")
    rest, _, query = rest.partition("?")
    rest, _, fragment = rest.partition("#")
    if fragment:
        raise ValueError(f"a sentinel URL has no #fragment ({FORM})")
    userinfo, at, location = rest.rpartition("@")
    hosts, slash, path = location.partition("/")
    sentinels = tuple(_sentinel_address(host) for host in hosts.split(","))
    segments = path.split("/") if slash else []
    if not segments or not segments[0]:
        raise ValueError(
            f"the sentinel URL names no service (the sentinels' 'sentinel monitor' name: {FORM})"
        )
    service = unquote(segments[0])
    if not service.isprintable() or any(c.isspace() for c in service):
        raise ValueError(
            "the sentinel URL's service name has a space or a control character"
        )
    database = "/".join(segments[1:]) or "0"  # no database, or a bare slash: 0
    if not database.isdigit():
        raise ValueError(f"the sentinel URL's database must be a number ({FORM})")
    db = int(database)
    username, password = None, None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    return SentinelTarget(
        sentinels, service, db, username, password, _sentinel_password(query)
    )


def _sentinel_address(host: str) -> tuple[str, int]:
    name, port = host, str(DEFAULT_PORT)
    if host.startswith("["):
        name, bracket, tail = host.partition("]")
        name += bracket
        if tail:
            if not tail.startswith(":"):
                raise _bad_host(host)
            port = tail[1:]
    elif ":" in host:
        name, _, port = host.partition(":")
    match = _HOST.fullmatch(name)
    if match is None or not port.isdigit() or not 0 < int(port) < 65536:
        raise _bad_host(host)
    return match["v6"] or match["name"], int(port)


def _bad_host(host: str) -> ValueError:
    what = repr(host) if host else "an empty one"
    return ValueError(
        f"the sentinel URL's host list has {what}: host:port, separated by commas ({FORM})"
    )


def _sentinel_password(query: str) -> str | None:
    if not query:
        return None
    try:
        values = parse_qs(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise ValueError("the sentinel URL's query is malformed") from None
    unknown = sorted(set(values) - set(PARAMETERS))
    if unknown:
        raise ValueError(
            f"the sentinel URL takes no parameter {unknown[0]!r} (only ?sentinel_password=…)"
        )
    (password,) = values["sentinel_password"][-1:]
    return password


class _SentinelRedis(aioredis.Redis):
    """The client ``master_for`` makes, closing its sentinels' connections with its own."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        await super().aclose(close_connection_pool)
        if isinstance(manager, Sentinel):
            await manager.aclose()


def sentinel_client(
    target: SentinelTarget, call_timeout_s: float, **connection: Any
) -> aioredis.Redis:
    """A client of the service's primary now: each new connection asks the sentinels where it is.

    A sentinel is given ``call_timeout_s`` to answer; a dead one costs that much and the next
    is asked.
    """
    sentinel = Sentinel(
        target.sentinels,
        sentinel_kwargs={
            "socket_timeout": call_timeout_s,
            "socket_connect_timeout": call_timeout_s,
            "password": target.sentinel_password,
        },
    )
    client: aioredis.Redis = sentinel.master_for(
        target.service,
        redis_class=_SentinelRedis,
        db=target.db,
        username=target.username,
        password=target.password,
        **connection,
    )
    return client


async def no_primary_reason(target: SentinelTarget, call_timeout_s: float) -> str:
    """Why the sentinels named no primary: none answered, or none knows the service up."""
    answered = []
    for host, port in target.sentinels:
        client = aioredis.Redis(
            host=host,
            port=port,
            password=target.sentinel_password,
            socket_timeout=call_timeout_s,
            socket_connect_timeout=call_timeout_s,
        )
        try:
            async with asyncio.timeout(call_timeout_s * 2):
                await client.ping()
            answered.append(f"{host}:{port}")
        except (OSError, TimeoutError, aioredis.RedisError):
            pass
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()
    if not answered:
        where = ",".join(f"{host}:{port}" for host, port in target.sentinels)
        return f"no sentinel answered at {where}: is redis-sentinel running there?"
    return (
        f"the sentinels ({','.join(answered)}) know no primary that is up for the service "
        f"{target.service!r}: is it the name in their 'sentinel monitor'?"
    )
