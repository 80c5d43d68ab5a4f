"""``ApiClient``: one method per call of ``/api/v1``, over keep-alive connections, each call bounded in time.

::

    async with ApiClient("https://chat.example.com", key) as api:
        sent = await api.publish("stocks", "ACME 12.30", retries=5)
        async with api.stream("stocks") as stream:
            await stream.append("thinking…")

``publish(…, retries=N)`` is the reason ``idempotency_key`` exists: when no answer
came back (refused, reset, timed out) or the store was unavailable (503), the
call is sent again with the *same* key, so the server stores the message once
however many of the attempts reached it, and every answer names the same id.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

from rawws.api import answers
from rawws.api.answers import (
    Membership,
    Published,
    RoomInfo,
    StreamAppended,
    StreamFinished,
)
from rawws.api.connection import Pool
from rawws.api.errors import ApiError, ApiUnreachable
from rawws.api.wire import encode_body, parse_answer, parse_url

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_CONNECTIONS = 8
#: the first pause between two attempts of a publish; doubled each time, up to RETRY_CAP_S
RETRY_DELAY_S = 0.05
RETRY_CAP_S = 2.0


def new_idempotency_key() -> str:
    """32 random URL-safe characters: unique enough that two publishes never share one by chance."""
    return secrets.token_urlsafe(24)


def retry_pause(attempt: int, error: Exception) -> float:
    """How long to wait before attempt ``attempt + 1``: the server's ``Retry-After``, else a doubling delay."""
    if isinstance(error, ApiError) and error.retry_after is not None:
        return min(error.retry_after, RETRY_CAP_S)
    return min(RETRY_DELAY_S * 2.0**attempt, RETRY_CAP_S)


def worth_retrying(error: Exception) -> bool:
    """No answer (the call may or may not have been carried out) or 503: nothing stored, try again."""
    return isinstance(error, ApiUnreachable) or (
        isinstance(error, ApiError) and error.status == 503
    )


class ApiClient:
    """The server API of one rawws server, with one API key (``rwk_…``); an async context manager.

    ``timeout`` bounds each call (connecting, sending, reading the answer);
    ``connections`` is how many calls may be under way at once.
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        connections: int = DEFAULT_CONNECTIONS,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url
        self.pool = Pool(
            parse_url(url), key, size=connections, timeout=timeout, tls=tls
        )

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.pool.close()

    def __repr__(self) -> str:  # never the key
        return f"ApiClient({self.url!r})"

    async def call(
        self, name: str, *, timeout: float | None = None, **fields: Any
    ) -> dict[str, Any]:
        """``POST /api/v1/<name>`` with ``fields`` (None ones left out): the answer's JSON object, or ``ApiError``."""
        answer = await self.pool.call(name, encode_body(fields), timeout)
        return parse_answer(answer)

    async def publish(
        self,
        room: str,
        text: str,
        idempotency_key: str | None = None,
        *,
        retries: int = 0,
        timeout: float | None = None,
    ) -> Published:
        """Store ``text`` in ``room`` as this key's app user and fan it out.

        With ``retries``, an attempt that got no answer or a 503 is made again (up
        to ``retries`` more times) with the same ``idempotency_key``, one made up
        here if none was given: the message is stored once whatever happens.
        """
        if retries > 0 and idempotency_key is None:
            idempotency_key = new_idempotency_key()
        attempt = 0
        while True:
            try:
                return answers.published(
                    await self.call(
                        "publish",
                        timeout=timeout,
                        room=room,
                        text=text,
                        idempotency_key=idempotency_key,
                    )
                )
            except (ApiError, ApiUnreachable) as error:
                if attempt >= retries or not worth_retrying(error):
                    raise
                await asyncio.sleep(retry_pause(attempt, error))
                attempt += 1

    async def publish_batch(
        self, messages: list[dict[str, str]]
    ) -> list[Published | ApiError]:
        """Up to 100 ``{room, text, idempotency_key?}`` at once: each one's ``Published`` or its ``ApiError``."""
        answer = await self.call("publish_batch", messages=messages)
        return [
            answers.published_or_error(result)
            for result in answers.field(answer, "results", list)
        ]

    async def rooms_create(
        self,
        room: str,
        kind: str,
        owner: str | None = None,
        members: list[str] | None = None,
    ) -> RoomInfo:
        """A room of ``kind`` ("public", "private" or "feed"); a private one's full name is in the answer."""
        return answers.room_info(
            await self.call(
                "rooms_create", room=room, kind=kind, owner=owner, members=members
            )
        )

    async def rooms_list(self, prefix: str | None = None) -> list[RoomInfo]:
        answer = await self.call("rooms_list", prefix=prefix)
        return [answers.room_info(room) for room in answers.objects(answer, "rooms")]

    async def rooms_delete(self, room: str) -> None:
        await self.call("rooms_delete", room=room)

    async def members_add(
        self, room: str, user: str, role: str | None = None
    ) -> Membership:
        return answers.membership(
            await self.call("members_add", room=room, user=user, role=role)
        )

    async def members_remove(self, room: str, user: str) -> None:
        await self.call("members_remove", room=room, user=user)

    async def users_disconnect(self, user: str) -> int:
        """Close ``user``'s connections (every node closes its own): how many this node closed."""
        return int(
            answers.field(
                await self.call("users_disconnect", user=user), "connections", int
            )
        )

    async def presence(self, room: str) -> list[str]:
        return answers.texts(await self.call("presence", room=room), "users")

    async def history(
        self, room: str, before: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The ``message`` frames of ``room`` (``docs/protocol.md``), oldest first, before id ``before``."""
        answer = await self.call("history", room=room, before=before, limit=limit)
        return answers.objects(answer, "messages")

    async def stream_open(self, room: str) -> str:
        """A new streamed message in ``room``: its stream id."""
        return str(
            answers.field(await self.call("stream_open", room=room), "stream", str)
        )

    async def stream_append(self, stream: str, text: str) -> StreamAppended:
        return answers.stream_appended(
            await self.call("stream_append", stream=stream, text=text)
        )

    async def stream_finish(self, stream: str) -> StreamFinished:
        return answers.stream_finished(await self.call("stream_finish", stream=stream))

    @contextlib.asynccontextmanager
    async def stream(self, room: str) -> AsyncIterator[Stream]:
        """A streamed message: ``append`` its chunks; leaving the block finishes it.

        If the block raised, the stream is still finished with what it has (the
        room already saw those chunks) and the block's error is what propagates.
        """
        stream = Stream(self, await self.stream_open(room))
        try:
            yield stream
        except BaseException:
            with contextlib.suppress(ApiError, ApiUnreachable):
                await stream.finish()
            raise
        await stream.finish()


class Stream:
    """An open streamed message (from ``ApiClient.stream``)."""

    def __init__(self, client: ApiClient, stream_id: str) -> None:
        self.client = client
        self.id = stream_id
        #: the stored message, once finished
        self.finished: StreamFinished | None = None

    async def append(self, text: str) -> int:
        """Add a chunk; its ``seq`` (1 for the first)."""
        return (await self.client.stream_append(self.id, text)).seq

    async def finish(self) -> StreamFinished:
        if self.finished is None:
            self.finished = await self.client.stream_finish(self.id)
        return self.finished
