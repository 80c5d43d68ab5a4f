"""``rawws.serve``: a WebSocket server in one call, the way an application starts one.

::

    async def handler(connection):
        async for message in connection:
            await connection.send(message)

    async with rawws.serve(handler, "127.0.0.1", 8765) as server:
        await server.serve_forever()

Every path upgrades (``connection.request.path`` says which one was asked
for); ``process_request`` may answer a request over HTTP instead. The keywords
are the server's settings under the names websockets gives them; their
defaults are ``rawws.config``'s, the ones ``rawws serve`` runs with, and
``config=`` sets anything else (outbox bounds, per-address limits, …).
"""

from __future__ import annotations

import dataclasses
import ssl as ssl_module
from collections.abc import Sequence

from rawws.aio.inbox import DEFAULT_MAX_QUEUE
from rawws.config import (
    DEFAULT_CLOSE_TIMEOUT_S,
    DEFAULT_HANDSHAKE_TIMEOUT_S,
    DEFAULT_INFLATE_BYTES_PER_S,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MESSAGE_TIMEOUT_S,
    DEFAULT_PING_INTERVAL_S,
    DEFAULT_PING_TIMEOUT_S,
    DEFAULT_READ_FRAMES_PER_S,
    ServerConfig,
)
from rawws.core.deflate import OFF, SHARED
from rawws.errors import SettingError
from rawws.server.endpoint import ConnectionHandler, ProcessRequest, WebSocketHandler
from rawws.server.server import Server

#: ``ServerConfig`` field → the keyword of ``serve`` that sets it (an error names the keyword).
_KEYWORDS = {
    "host": "host",
    "port": "port",
    "compression": "compression",
    "max_message_bytes": "max_message_size",
    "handshake_timeout_s": "open_timeout",
    "ping_interval_s": "ping_interval",
    "ping_timeout_s": "ping_timeout",
    "close_timeout_s": "close_timeout",
    "inflate_bytes_per_s": "inflate_bytes_per_second",
    "read_frames_per_s": "read_frames_per_second",
    "message_timeout_s": "message_timeout",
}


def serve(
    handler: ConnectionHandler | WebSocketHandler,
    host: str,
    port: int,
    *,
    process_request: ProcessRequest | None = None,
    subprotocols: Sequence[str] = (),
    compression: str | None = "deflate",
    max_message_size: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_queue: int = DEFAULT_MAX_QUEUE,
    open_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT_S,
    ping_interval: float | None = DEFAULT_PING_INTERVAL_S,
    ping_timeout: float = DEFAULT_PING_TIMEOUT_S,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT_S,
    inflate_bytes_per_second: int = DEFAULT_INFLATE_BYTES_PER_S,
    read_frames_per_second: float = DEFAULT_READ_FRAMES_PER_S,
    message_timeout: float | None = DEFAULT_MESSAGE_TIMEOUT_S,
    ssl: ssl_module.SSLContext | None = None,
    config: ServerConfig | None = None,
) -> Server:
    """A ``Server`` for ``handler`` on ``host``:``port`` (0: a free port), started by ``await`` or ``async with``.

    ``handler``: ``async def handler(connection)`` (the connection is closed when it
    returns, with 1011 if it raised), or a ``WebSocketHandler`` of callbacks.
    ``process_request(request)``: a ``Response`` to send instead of the 101, or
    ``None`` to go on (a function or a coroutine). ``subprotocols``: the ones
    accepted, in order of preference. ``compression``: ``"deflate"``
    (permessage-deflate, one compressed frame shared by every receiver of a
    broadcast), ``"dedicated"`` (a context per connection) or ``None``.
    ``max_message_size``: bytes, after inflation; more is closed with 1009.
    ``max_queue``: received messages waiting for ``recv()`` before the socket is
    no longer read. ``open_timeout``: the whole request (and the TLS handshake).
    ``ping_interval`` (``None``: no keepalive), ``ping_timeout``,
    ``close_timeout``: seconds. ``inflate_bytes_per_second`` (what compressed
    messages inflate to; a plain payload is not counted by the byte) and ``read_frames_per_second``: what one connection's input may
    cost; past either its socket is not read until the budget refills (it is
    slowed down, not closed). ``message_timeout``: seconds for a whole message
    from its first fragment, then 1008 (``None``: no limit). ``ssl``: serve ``wss://``. ``config``: every
    other setting, from a ``ServerConfig`` (these keywords win over its fields).
    """
    base = config if config is not None else ServerConfig()
    try:
        config = dataclasses.replace(
            base,
            host=host,
            port=port,
            compression=_compression_mode(compression),
            max_message_bytes=max_message_size,
            handshake_timeout_s=open_timeout,
            ping_interval_s=ping_interval or 0.0,
            ping_timeout_s=ping_timeout,
            close_timeout_s=close_timeout,
            inflate_bytes_per_s=inflate_bytes_per_second,
            read_frames_per_s=read_frames_per_second,
            message_timeout_s=message_timeout or 0.0,
        )
    except SettingError as error:
        keyword = _KEYWORDS.get(error.setting, error.setting)
        raise error.named(f"{keyword}={error.value}") from None
    server = Server(config, health_routes=False, ssl=ssl)
    server.add_websocket(
        None,
        handler,
        subprotocols=subprotocols,
        process_request=process_request,
        max_queue=max_queue,
    )
    return server


def _compression_mode(compression: str | None) -> str:
    if compression is None:
        return OFF
    if compression == "deflate":
        return SHARED
    if compression in ("shared", "dedicated", "off"):
        return compression
    raise ValueError(f"compression={compression!r}: use 'deflate', 'dedicated' or None")
