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

import jwt

from rawws.accounts.passwords import Passwords
from rawws.accounts.routes import Accounts, StoredTickets
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
from rawws.chat.service import ChatHandler, ChatLimits
from rawws.config import ServerConfig
from rawws.server.echo import EchoHandler
from rawws.server.metrics import MetricsListener
from rawws.server.pages import add_page_routes
from rawws.server.server import Server
from rawws.store import open_store, sqlite_url
from rawws.store.health import StoreHealth

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
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # the mode applies when it is created
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            secret = bytes.fromhex(path.read_text().strip())
        except ValueError:
            raise ValueError(f"{path}: not a hex-encoded secret") from None
    else:
        secret = generate_secret()
        with os.fdopen(fd, "w") as file:
            file.write(secret.hex() + "\n")
        log.info("generated a JWT secret in %s", path)
    if len(secret) < SECRET_BYTES:
        raise ValueError(f"{path} holds a secret shorter than {SECRET_BYTES} bytes")
    return secret


def read_public_key(path: str, algorithm: str) -> bytes:
    """The PEM of ``--jwt-public-key``, checked now: one line naming the file when it is missing or not a key."""
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"--jwt-public-key {path}: {exc.strerror or exc}") from None
    try:
        jwt.get_algorithm_by_name(algorithm).prepare_key(pem)
    except (ValueError, TypeError, jwt.PyJWTError):
        raise ValueError(f"--jwt-public-key {path}: not a PEM public key for {algorithm}") from None
    return pem


def token_settings(config: ServerConfig) -> TokenSettings:
    if config.jwt_secret is not None:
        secret = config.jwt_secret.encode("utf-8")
    else:
        secret = load_or_create_secret(Path(config.data_dir))
    public_key = None
    if config.jwt_public_key is not None:
        public_key = PublicKey(config.jwt_public_algorithm, read_public_key(config.jwt_public_key, config.jwt_public_algorithm))
    return TokenSettings(
        secret=secret,
        issuer=config.jwt_issuer,
        audience=config.jwt_audience,
        access_ttl_s=config.access_ttl_s,
        ticket_ttl_s=config.ticket_ttl_s,
        public_key=public_key,
        public_namespace=config.jwt_public_namespace,
    )


async def setup_app(server: Server) -> None:
    """Open the store and register every route and endpoint of the chat service."""
    config = server.config
    tokens = Tokens(token_settings(config))
    store = await open_store(config.db_url or sqlite_url(config.data_dir))
    passwords = Passwords(config.argon2_time_cost, config.argon2_memory_kib, config.argon2_parallelism)
    health = StoreHealth()
    bus = open_bus(config)
    shared = SharedState(bus.client, config.bus_timeout_s) if bus is not None else None
    accounts = Accounts(
        store,
        passwords,
        tokens,
        logins_per_user=config.logins_per_minute_per_user,
        logins_per_address=config.logins_per_minute_per_address,
        registrations_per_address=config.registrations_per_hour_per_address,
        tickets_per_user=config.tickets_per_minute_per_user,
        refresh_ttl_s=config.refresh_ttl_s,
        health=health,
        shared_limit=shared.take_login if shared else None,
        counters=server.stats,
    )
    accounts.add_routes(server.router)
    add_page_routes(server.router)
    # A ticket is spent once: in the bus's shared record when there are several nodes,
    # else in the store (so a spent ticket stays spent across a restart).
    authenticate = WebSocketAuthenticator(
        tokens,
        TicketLedger(),
        frozenset(config.allowed_origins),
        tls=config.tls,
        shared_spend=shared.spend_ticket if shared else StoredTickets(store, health),
    )
    chat = ChatHandler(
        store,
        bus=bus,
        node=node_name(),
        heartbeat_s=config.bus_heartbeat_s,
        presence_ttl_s=config.presence_ttl_s,
        counters=server.stats,
        health=health,
        limits=ChatLimits(
            messages_per_s=config.chat_messages_per_s,
            message_burst=config.chat_message_burst,
            max_rooms_per_connection=config.chat_max_rooms_per_connection,
            max_batch_messages=config.chat_max_batch_messages,
            replay_page_messages=config.chat_replay_page_messages,
        ),
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
    server.readiness.add("store", store.ping)
    if bus is not None:
        server.readiness.add("bus", bus.client.ping)
        server.stats.bus.configured = True
        server.stats.bus.connected_probe = lambda: bus.connected
    server.on_shutdown.append(server.readiness.close)
    if config.metrics_port is not None:
        metrics = MetricsListener(server, config.metrics_host, config.metrics_port)
        await metrics.start()
        server.metrics_port = metrics.port
        server.on_shutdown.append(metrics.close)
