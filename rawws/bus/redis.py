"""The Redis bus: one pub/sub channel that every node publishes to and subscribes to.

Redis pub/sub is fire-and-forget, and that is all this needs: nothing here
must arrive, because every receiver repairs a gap from the store. What this
module must do is never stall the event loop and never flood the log:

* every call has a timeout (``call_timeout_s``);
* publishing only queues (bounded); one task sends the queue in pipelines;
* the subscription is watched with PINGs; when it fails it is made again with
  backoff, and ``on_reconnect`` runs so the node catches up from the store;
* an outage is logged once when it starts and once when it ends;
* every event is sealed (``rawws.bus.seal``): signed with the cluster's key and fresh, so
  what a stranger or a replay puts on the channel is refused and counted, never passed on.

At start the server refuses to run when Redis cannot be reached
(``BusUnavailable``): a node that starts cut off would serve a split chat
without anyone noticing. Outages after the start are ridden out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import MasterNotFoundError

from rawws.bus import sentinel
from rawws.bus.base import Receiver
from rawws.bus.seal import Refused, Seal
from rawws.core.redact import redact_url
from rawws.errors import RawwsError, SettingError

log = logging.getLogger("rawws.bus")

CHANNEL = "rawws:events"
DEFAULT_CALL_TIMEOUT_S = 1.0  # any one Redis call; a stalled Redis costs at most this
PING_INTERVAL_S = 1.0  # the subscription is checked this often
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 2.0
QUEUE_LIMIT = 10_000  # events waiting to be published; beyond, new ones are dropped (receivers repair)
PIPELINE_MAX = 512  # events per pipeline round trip
SCHEMES = ("redis", "rediss", "unix")  # and rawws.bus.sentinel's redis+sentinel
REFUSED_LOG_EVERY = 1000  # after the first refused event, one line per this many more


class BusUnavailable(RawwsError):
    """The bus could not be reached at start: ``url`` (its password hidden) and ``reason``."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the bus at {url}: {reason}")
        self.url = url
        self.reason = reason


def redacted(url: str) -> str:
    """``url`` without its password, for log lines and error messages."""
    return redact_url(url)


def check_bus_url(url: str) -> str:
    """``url`` if it names a Redis server, else ``SettingError`` (a ``ValueError``) with a one-line reason."""

    def refuse(reason: str) -> SettingError:
        return SettingError("bus_url", redacted(url), reason)

    if sentinel.is_sentinel_url(url):
        try:
            sentinel.parse_sentinel_url(url)
        except ValueError as exc:
            raise refuse(str(exc)) from None
        return url
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number or out of range
    except ValueError:
        raise refuse(
            "the bus URL is malformed (e.g. redis://127.0.0.1:6379/0)"
        ) from None
    if parts.scheme not in SCHEMES:
        raise refuse(
            "a bus URL must start with redis://, rediss://, unix:// or redis+sentinel://"
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise refuse("the bus URL names no host")
    if parts.scheme != "unix":
        database = parts.path.lstrip("/")
        if database and not database.isdigit():
            raise refuse(
                "the bus URL's database must be a number (redis://host:port/0)"
            )
    del port
    try:  # redis-py hands every query parameter to its connection class: an unknown one is a TypeError
        pool = aioredis.Redis.from_url(url).connection_pool
        pool.connection_class(**pool.connection_kwargs)
    except (TypeError, ValueError) as exc:
        raise refuse(
            f"a parameter of the bus URL is not one Redis's client takes ({_first_line(exc)})"
        ) from None
    return url


def _client(
    url: str, call_timeout_s: float, *, blocking: bool = False
) -> aioredis.Redis:
    """A client of the Redis ``url`` names (a checked URL); ``blocking`` ones (a subscription's) wait
    on reads without a timeout: its watch PINGs instead."""
    read_timeout = None if blocking else call_timeout_s
    if sentinel.is_sentinel_url(url):
        return sentinel.sentinel_client(
            sentinel.parse_sentinel_url(url),
            call_timeout_s,
            socket_timeout=read_timeout,
            socket_connect_timeout=call_timeout_s,
        )
    return aioredis.Redis.from_url(
        url, socket_timeout=read_timeout, socket_connect_timeout=call_timeout_s
    )


def _first_line(exc: BaseException) -> str:
    """``exc`` as one line without its type's module (``unexpected keyword argument 'passwd'``).

    Python 3.13 adds a guess (``. Did you mean 'password'?``): cut, so every Python says the same.
    """
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.split(".__init__() got an ")[-1].split(". Did you mean ")[0]


async def _unreachable(
    url: str, exc: BaseException, call_timeout_s: float
) -> BusUnavailable:
    text = str(exc).rstrip(".")
    if isinstance(exc, MasterNotFoundError) and sentinel.is_sentinel_url(url):
        target = sentinel.parse_sentinel_url(url)
        reason = await sentinel.no_primary_reason(target, call_timeout_s)
    elif isinstance(exc, TimeoutError | aioredis.TimeoutError):
        reason = (
            f"it did not answer within {call_timeout_s:g} s: is Redis running there?"
        )
    elif isinstance(exc, aioredis.AuthenticationError) or "authenticated" in text:
        if _has_password(url):
            reason = "Redis refused the URL's password: is it the one in Redis's requirepass?"
        else:
            reason = (
                "Redis asks for a password and the URL gives none: "
                "redis://:PASSWORD@host:port/db (unix://…?password=PASSWORD)"
            )
    else:
        reason = f"{text or type(exc).__name__}: is Redis running there?"
    return BusUnavailable(redacted(url), reason)


def _has_password(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.password) or "password" in parse_qs(parts.query)


async def _ping(client: aioredis.Redis, url: str, call_timeout_s: float) -> None:
    try:
        async with asyncio.timeout(call_timeout_s * 3):
            await client.ping()
    except (OSError, TimeoutError, aioredis.RedisError) as exc:
        raise await _unreachable(url, exc, call_timeout_s) from None


async def reach(url: str, call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S) -> None:
    """Return once Redis at ``url`` answers a PING (with the URL's password); else ``BusUnavailable``.

    A start asks this before it makes anything (the JWT secret the bus key comes from): a start
    refused for its bus leaves no new file behind.
    """
    client = _client(check_bus_url(url), call_timeout_s)
    try:
        await _ping(client, url, call_timeout_s)
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(call_timeout_s):
                await client.aclose()


async def publish_once(
    url: str,
    key: bytes,
    data: bytes,
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
    channel: str = CHANNEL,
) -> None:
    """Seal ``data`` with the cluster's ``key`` and publish it once, from a process that is no node
    (`rawws admin`); ``BusUnavailable`` when Redis does not take it."""
    client = _client(check_bus_url(url), call_timeout_s)
    sealed = Seal(key, channel.encode("utf-8")).seal(data, time.time())
    try:
        async with asyncio.timeout(call_timeout_s):
            await client.publish(channel, sealed)
    except (OSError, TimeoutError, aioredis.RedisError) as exc:
        raise await _unreachable(url, exc, call_timeout_s) from None
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(call_timeout_s):
                await client.aclose()


class RedisBus:
    """A ``Bus`` over one Redis server (``redis://host:port/db``), or over the primary that Redis
    Sentinel names now (``redis+sentinel://…``, ``rawws.bus.sentinel``), its events sealed with ``key``.

    ``key`` is the cluster's bus key (``rawws.bus.seal.bus_key``): the same on every node.
    """

    def __init__(
        self,
        url: str,
        key: bytes,
        *,
        call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
        channel: str = CHANNEL,
    ) -> None:
        self.url = check_bus_url(url)
        self.channel = channel
        self.seal = Seal(key, channel.encode("utf-8"))
        self.call_timeout_s = call_timeout_s
        self.client: aioredis.Redis = _client(url, call_timeout_s)
        self._sub_client: aioredis.Redis = _client(url, call_timeout_s, blocking=True)
        self._connected = False
        self._down_since: float | None = None
        self._queue: deque[bytes] = deque()
        self._queued = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._receive: Receiver | None = None
        self._on_reconnect: Callable[[], Coroutine[Any, Any, None]] | None = None
        self._reconnects: set[asyncio.Task[None]] = set()
        self._subscribed = asyncio.Event()
        # Counters (exposed for tests and for /healthz-like reporting)
        self.published = 0
        self.dropped = 0  # not published: bus down, queue full or a failed pipeline
        self.received = 0  # opened: sealed by a node of this cluster, and fresh
        self.forged = 0  # refused: not sealed with this cluster's key (garbage, a forger, another secret)
        self.stale = 0  # refused: a replay, or sent longer ago than the seal's window
        self.outages = 0

    @property
    def connected(self) -> bool:
        return self._connected

    def publish(self, data: bytes) -> None:
        if not self._connected or len(self._queue) >= QUEUE_LIMIT:
            self.dropped += 1
            return
        self._queue.append(self.seal.seal(data, time.time()))
        self._queued.set()

    async def start(
        self, receive: Receiver, on_reconnect: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        """Reach Redis (``BusUnavailable`` if it does not answer) and subscribe."""
        self._receive = receive
        self._on_reconnect = on_reconnect
        try:
            await _ping(self.client, self.url, self.call_timeout_s)
        except BusUnavailable:
            await self.close()
            raise
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._subscription()),
            loop.create_task(self._publisher()),
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.call_timeout_s * 3):
                await self._subscribed.wait()

    # -- the subscription ---------------------------------------------------------------

    async def _subscription(self) -> None:
        backoff = BACKOFF_MIN_S
        while True:
            pubsub = self._sub_client.pubsub()
            try:
                async with asyncio.timeout(self.call_timeout_s):
                    await pubsub.subscribe(self.channel)
                self._up()
                backoff = BACKOFF_MIN_S
                await self._read(pubsub)
            except asyncio.CancelledError:
                raise
            except (
                Exception
            ) as exc:  # connection refused, reset, timeout, protocol error
                self._down(exc)
            finally:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self.call_timeout_s):
                        await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _read(self, pubsub: aioredis.client.PubSub) -> None:
        last_heard = last_ping = time.monotonic()
        while True:
            async with asyncio.timeout(self.call_timeout_s + PING_INTERVAL_S):
                message = await pubsub.get_message(timeout=PING_INTERVAL_S / 2)
            now = time.monotonic()
            if message is not None:
                last_heard = now
                if message.get("type") == "message":
                    self._dispatch(message.get("data"))
            if now - last_ping >= PING_INTERVAL_S:
                async with asyncio.timeout(self.call_timeout_s):
                    await pubsub.ping()
                last_ping = now
            if now - last_heard > PING_INTERVAL_S + self.call_timeout_s:
                raise TimeoutError("the subscription stopped answering")

    def _dispatch(self, data: object) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        if not isinstance(data, bytes):
            return
        opened = self.seal.open(data, time.time())
        if isinstance(opened, Refused):
            self._refused(opened)
            return
        self.received += 1
        assert self._receive is not None
        try:
            self._receive(opened)
        except Exception:
            log.exception("handling a bus message failed")

    def _refused(self, why: Refused) -> None:
        """Counted; logged for the first one and then once per ``REFUSED_LOG_EVERY``."""
        if why is Refused.FORGED:
            self.forged += 1
        else:
            self.stale += 1
        refused = self.forged + self.stale
        if refused == 1 or refused % REFUSED_LOG_EVERY == 0:
            log.warning(
                "refused a bus event (%s; %d forged and %d stale so far, logged once per %d): "
                "if every node's events are refused, the nodes do not share one JWT secret",
                why.value,
                self.forged,
                self.stale,
                REFUSED_LOG_EVERY,
            )

    def _up(self) -> None:
        self._connected = True
        self._subscribed.set()
        if self._down_since is None:
            return
        log.warning(
            "bus is back after %.1f s (%d event(s) were not published; rooms are caught up from the store)",
            time.monotonic() - self._down_since,
            self.dropped,
        )
        self._down_since = None
        if self._on_reconnect is not None:
            task = asyncio.get_running_loop().create_task(self._on_reconnect())
            self._reconnects.add(task)
            task.add_done_callback(self._reconnects.discard)

    def _down(self, exc: BaseException) -> None:
        self._connected = False
        if self._down_since is not None:
            return
        self._down_since = time.monotonic()
        self.outages += 1
        log.warning(
            "bus is down (%s): serving local members only, reconnecting",
            str(exc) or type(exc).__name__,
        )

    # -- publishing ---------------------------------------------------------------------

    async def _publisher(self) -> None:
        while True:
            await self._queued.wait()
            self._queued.clear()
            while self._queue:
                count = min(len(self._queue), PIPELINE_MAX)
                batch = [self._queue.popleft() for _ in range(count)]
                try:
                    async with asyncio.timeout(self.call_timeout_s):
                        pipe = self.client.pipeline(transaction=False)
                        for data in batch:
                            pipe.publish(self.channel, data)
                        await pipe.execute()
                except asyncio.CancelledError:
                    raise
                except (
                    Exception
                ):  # the subscription's watch logs the outage; receivers repair
                    self.dropped += len(batch)
                else:
                    self.published += len(batch)

    async def close(self) -> None:
        """Send what is queued (bounded by the call timeout), then disconnect."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.call_timeout_s):
                while self._connected and self._queue and self._tasks:
                    await asyncio.sleep(0.01)
        tasks = [*self._tasks, *self._reconnects]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self.call_timeout_s * 2)
        for client in (self.client, self._sub_client):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.call_timeout_s):
                    await client.aclose()
