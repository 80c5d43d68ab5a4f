"""Wiring: the store, tokens, accounts and endpoints a `rawws serve` runs, built from its config.

This is the edge's composition root: it reads the data directory (the JWT
secret file) and opens the database, then hangs the routes on the server.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from pathlib import Path

from rawws.accounts.passwords import Passwords
from rawws.accounts.routes import Accounts
from rawws.accounts.tokens import (
    SECRET_BYTES,
    SUBPROTOCOL,
    PublicKey,
    TicketLedger,
    Tokens,
    TokenSettings,
    WebSocketAuthenticator,
    generate_secret,
)
from rawws.bus.redis import RedisBus
from rawws.bus.shared import SharedState
from rawws.chat.service import ChatHandler
from rawws.config import ServerConfig
from rawws.server.echo import EchoHandler
from rawws.server.pages import add_page_routes
from rawws.server.server import Server
from rawws.store import open_store, sqlite_url

log = logging.getLogger("rawws.server")

SECRET_FILE = "jwt-secret"


def node_name() -> str:
    """This process among the nodes of one chat: host, pid and a random tail (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def open_bus(config: ServerConfig) -> RedisBus | None:
    """The Redis bus when ``bus_url`` is set; ``None`` (one node) otherwise."""
    if config.bus_url is None:
        return None
    return RedisBus(config.bus_url, call_timeout_s=config.bus_timeout_s)


def load_or_create_secret(data_dir: Path) -> bytes:
    """The HS256 secret kept in ``data_dir``: generated once (``SECRET_BYTES`` random bytes), owner-readable only."""
    path = data_dir / SECRET_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = bytes.fromhex(path.read_text().strip())
    else:
        secret = generate_secret()
        with os.fdopen(fd, "w") as file:
            file.write(secret.hex() + "\n")
        log.info("generated a JWT secret in %s", path)
    if len(secret) < SECRET_BYTES:
        raise ValueError(f"{path} holds a secret shorter than {SECRET_BYTES} bytes")
    return secret


def token_settings(config: ServerConfig) -> TokenSettings:
    if config.jwt_secret is not None:
        secret = config.jwt_secret.encode("utf-8")
    else:
        secret = load_or_create_secret(Path(config.data_dir))
    public_key = None
    if config.jwt_public_key is not None:
        public_key = PublicKey(config.jwt_public_algorithm, Path(config.jwt_public_key).read_bytes())
    return TokenSettings(
        secret=secret,
        issuer=config.jwt_issuer,
        audience=config.jwt_audience,
        access_ttl_s=config.access_ttl_s,
        ticket_ttl_s=config.ticket_ttl_s,
        public_key=public_key,
    )


async def setup_app(server: Server) -> None:
    """Open the store and register every route and endpoint of the chat service."""
    config = server.config
    tokens = Tokens(token_settings(config))
    store = await open_store(config.db_url or sqlite_url(config.data_dir))
    passwords = Passwords(config.argon2_time_cost, config.argon2_memory_kib, config.argon2_parallelism)
    bus = open_bus(config)
    shared = SharedState(bus.client, config.bus_timeout_s) if bus is not None else None
    accounts = Accounts(
        store,
        passwords,
        tokens,
        logins_per_user=config.logins_per_minute_per_user,
        logins_per_address=config.logins_per_minute_per_address,
        shared_limit=shared.take_login if shared else None,
    )
    accounts.add_routes(server.router)
    add_page_routes(server.router)
    authenticate = WebSocketAuthenticator(
        tokens,
        TicketLedger(),
        frozenset(config.allowed_origins),
        tls=config.tls,
        shared_spend=shared.spend_ticket if shared else None,
    )
    chat = ChatHandler(
        store,
        bus=bus,
        node=node_name(),
        heartbeat_s=config.bus_heartbeat_s,
        presence_ttl_s=config.presence_ttl_s,
    )
    try:
        await chat.start()  # BusUnavailable: a node never starts cut off from the others
    except BaseException:
        await store.close()
        raise
    server.add_websocket("/ws", chat, subprotocols=(SUBPROTOCOL,), authenticate=authenticate)
    if config.echo:
        server.add_websocket("/echo", EchoHandler())

    async def close() -> None:
        await chat.close()  # every accepted message is stored before the store closes
        accounts.close()
        await store.close()

    server.on_shutdown.append(close)
