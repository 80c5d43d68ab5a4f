"""Wiring: the store, tokens, accounts and endpoints a `rawws serve` runs, built from its config.

This is the edge's composition root: it reads the data directory (the JWT
secret file) and opens the database, then hangs the routes on the server.
It knows which setting each file and URL came from, so what is wrong with one
is a ``SettingError`` naming it. The secret is made last, once the database and
the bus have answered: a start that fails on either leaves no new file behind
(and its one line is the only line).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

import jwt

from rawws.accounts.hook_deliveries import HookDeliveries
from rawws.accounts.hook_wire import MIN_SECRET_BYTES
from rawws.accounts.hooks import HookClient, connect_check
from rawws.accounts.passwords import Passwords
from rawws.accounts.routes import Accounts, StoredTickets
from rawws.accounts.shared import Breaker, SharedState
from rawws.accounts.shared_connections import SharedConnections
from rawws.accounts.stops import StopBook
from rawws.accounts.tokens import (
    SECRET_BYTES,
    SUBPROTOCOL,
    PublicKey,
    Tokens,
    TokenSettings,
    generate_secret,
)
from rawws.accounts.upgrade_auth import (
    TicketLedger,
    WebSocketAuthenticator,
)
from rawws.bus.redis import RedisBus, reach
from rawws.bus.seal import bus_key
from rawws.chat import wire
from rawws.chat.doors import stored_admin
from rawws.chat.hooked import ChatHooks, DisconnectHook
from rawws.chat.limits import ChatLimits
from rawws.chat.page import add_page_routes
from rawws.chat.retention import RetentionSweep
from rawws.chat.service import ChatHandler
from rawws.config import ServerConfig
from rawws.errors import SettingError
from rawws.server.echo import echo
from rawws.server.metrics import MetricsListener
from rawws.server.server import Server
from rawws.store import SqlStore, StoredMessage, open_store, sqlite_url
from rawws.store.outage import StoreHealth, write_probe

log = logging.getLogger("rawws.server")

SECRET_FILE = "jwt-secret"


def node_name() -> str:
    """This process among the nodes of one chat: host, pid and a random tail (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def open_bus(config: ServerConfig, jwt_secret: bytes) -> RedisBus | None:
    """The Redis bus when ``bus_url`` is set, sealed with a key derived from the JWT secret
    every node shares; ``None`` (one node) otherwise."""
    if config.bus_url is None:
        return None
    return RedisBus(
        config.bus_url, bus_key(jwt_secret), call_timeout_s=config.bus_timeout_s
    )


def prepare_data_dir(data_dir: Path) -> None:
    """The data directory, created owner-only if missing; ``SettingError`` (``data_dir``) when it cannot be one."""
    if data_dir.is_dir():
        if not os.access(data_dir, os.W_OK | os.X_OK):
            raise SettingError(
                "data_dir",
                str(data_dir),
                "not writable by this user: name a directory it may write",
            )
        return
    if data_dir.exists():
        raise SettingError(
            "data_dir",
            str(data_dir),
            "a file, not a directory: name a directory (it is created if missing)",
        )
    try:
        data_dir.mkdir(mode=0o700, parents=True)  # the mode applies when it is created
    except OSError as exc:
        raise SettingError(
            "data_dir", str(data_dir), f"cannot create it ({exc.strerror or exc})"
        ) from None


def load_or_create_secret(data_dir: Path) -> bytes:
    """The HS256 secret kept in ``data_dir``: generated once (``SECRET_BYTES`` random bytes), owner-readable only."""
    path = data_dir / SECRET_FILE
    prepare_data_dir(data_dir)
    replace = f"delete {SECRET_FILE} to have a new one made (tokens signed with the old one stop working)"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            secret = bytes.fromhex(path.read_text().strip())
        except (ValueError, UnicodeDecodeError):
            raise SettingError(
                "data_dir",
                str(data_dir),
                f"{SECRET_FILE} is not a hex-encoded secret: {replace}",
            ) from None
        except OSError as exc:
            raise SettingError(
                "data_dir",
                str(data_dir),
                f"cannot read {SECRET_FILE} ({exc.strerror or exc})",
            ) from None
    except OSError as exc:
        raise SettingError(
            "data_dir",
            str(data_dir),
            f"cannot create {SECRET_FILE} ({exc.strerror or exc})",
        ) from None
    else:
        secret = generate_secret()
        with os.fdopen(fd, "w") as file:
            file.write(secret.hex() + "\n")
        log.info("generated a JWT secret in %s", path)
    if len(secret) < SECRET_BYTES:
        raise SettingError(
            "data_dir",
            str(data_dir),
            f"{SECRET_FILE} is shorter than {SECRET_BYTES} bytes: {replace}",
        )
    return secret


async def open_app_store(config: ServerConfig) -> SqlStore:
    """The store of ``config``: ``db_url``, else SQLite in ``data_dir`` (prepared first, so a bad one is named)."""
    if config.db_url:
        return await open_store(config.db_url, config.db_timeout_s)
    prepare_data_dir(Path(config.data_dir))
    return await open_store(sqlite_url(config.data_dir), config.db_timeout_s)


def read_public_key(path: str, algorithm: str) -> bytes:
    """The PEM of ``--jwt-public-key``, checked now: one line naming the file when it is missing or not a key."""
    try:
        pem = Path(path).read_bytes()
    except FileNotFoundError:
        raise SettingError("jwt_public_key", path, "no such file") from None
    except OSError as exc:
        raise SettingError(
            "jwt_public_key", path, f"cannot read it ({exc.strerror or exc})"
        ) from None
    try:
        jwt.get_algorithm_by_name(algorithm).prepare_key(pem)
    except (ValueError, TypeError, jwt.PyJWTError):
        raise SettingError(
            "jwt_public_key", path, f"not a PEM public key for {algorithm}"
        ) from None
    return pem


def read_hook_secret(path: str) -> bytes:
    """The key of ``--hook-secret-file`` (its bytes, surrounding whitespace dropped), read at start: one
    line naming the flag when it is missing, unreadable or short (the key itself is never shown)."""
    try:
        secret = Path(path).read_bytes().strip()
    except FileNotFoundError:
        raise SettingError("hook_secret_file", path, "no such file") from None
    except OSError as exc:
        raise SettingError(
            "hook_secret_file", path, f"cannot read it ({exc.strerror or exc})"
        ) from None
    if len(secret) < MIN_SECRET_BYTES:
        raise SettingError(
            "hook_secret_file",
            path,
            f"the key is shorter than {MIN_SECRET_BYTES} bytes: write a longer random one",
        )
    return secret


def hook_client(config: ServerConfig, server: Server) -> HookClient | None:
    """The app's hooks when ``--hook-url`` is set (its key read now), else ``None``."""
    if config.hook_url is None or config.hook_secret_file is None:
        return None
    return HookClient(
        config.hook_url,
        read_hook_secret(config.hook_secret_file),
        config.hook_timeout_s,
        failure_allows=config.hook_failure == "allow",
        counters=server.counters,
    )


def token_settings(config: ServerConfig) -> TokenSettings:
    """The token settings of ``config``: the outside key read first, so a bad one leaves no new secret behind."""
    public_key = None
    if config.jwt_public_key is not None:
        public_key = PublicKey(
            config.jwt_public_algorithm,
            read_public_key(config.jwt_public_key, config.jwt_public_algorithm),
        )
    if config.jwt_secret is not None:
        secret = config.jwt_secret.encode("utf-8")
    else:
        secret = load_or_create_secret(Path(config.data_dir))
    return TokenSettings(
        secret=secret,
        issuer=config.jwt_issuer,
        audience=config.jwt_audience,
        access_ttl_s=config.access_ttl_s,
        ticket_ttl_s=config.ticket_ttl_s,
        public_key=public_key,
        public_namespace=config.jwt_public_namespace,
    )


@dataclass(frozen=True, slots=True)
class ChatApp:
    """What ``setup_app`` built, for what stands on the chat (the server API, ``rawws.apps``)."""

    store: SqlStore
    chat: ChatHandler
    bus: RedisBus | None
    health: StoreHealth
    tokens: Tokens
    #: The `/ws` endpoint's handler (the chat's, or it with the disconnect hook): SSE and polling's too.
    handler: ChatHandler | DisconnectHook
    #: The upgrade's credential check (Origin, token or ticket, stops, the connect hook).
    authenticate: WebSocketAuthenticator


async def setup_app(server: Server) -> ChatApp:
    """Open the store and register every route and endpoint of the chat service."""
    config = server.config
    hooks = hook_client(config, server)  # a bad key file is said before anything starts
    metrics = None
    if config.metrics_port is not None:  # its port is had first too, like the server's
        metrics = MetricsListener(server, config.metrics_host, config.metrics_port)
        await metrics.listen()
        server.on_shutdown.append(metrics.close)
    store = await open_app_store(config)
    health = StoreHealth()
    try:
        # BusUnavailable: a node never starts cut off from the others
        if config.bus_url is not None:
            await reach(config.bus_url, config.bus_timeout_s)
        # the secret is made once the database and the bus have answered: a failed start leaves no
        # new file; the bus's key is derived from it, so it is had before the bus starts
        settings = token_settings(config)
    except BaseException:
        await store.close()
        raise
    bus = open_bus(config, settings.secret)
    node = node_name()
    chat = ChatHandler(
        store,
        is_admin=stored_admin(store),  # `rawws admin grant`, on the server's machine
        bus=bus,
        node=node,
        heartbeat_s=config.bus_heartbeat_s,
        presence_ttl_s=config.presence_ttl_s,
        presence_grace_s=config.presence_grace_s,
        counters=server.counters,
        health=health,
        limits=ChatLimits(
            messages_per_s=config.chat_messages_per_s,
            message_burst=config.chat_message_burst,
            max_rooms_per_connection=config.chat_max_rooms_per_connection,
            max_batch_messages=config.chat_max_batch_messages,
            replay_page_messages=config.chat_replay_page_messages,
            history_max_age_s=config.history_max_age_s,
            history_max_messages=config.history_max_messages,
        ),
    )
    try:
        await chat.start()  # BusUnavailable, should Redis go away since it answered
    except BaseException:
        await store.close()
        raise
    tokens = Tokens(settings)
    # Every node's copy of the users' not_before stamps: checked at /auth/ticket and the upgrade,
    # polled from the store; a stamp closes the user's stopped connections here.
    stops = StopBook(store, settings.access_ttl_s + settings.leeway_s, health=health)
    stops.listeners.append(chat.stops.stop)
    if (
        bus is not None
    ):  # a stamp set here reaches the others at once; the poll is the fallback
        stops.announcers.append(chat.feed.stopped_here)
        chat.feed.on_stopped = stops.note
    try:
        await stops.start()
    except BaseException:
        await chat.close()
        await store.close()
        raise
    passwords = Passwords(
        config.argon2_time_cost, config.argon2_memory_kib, config.argon2_parallelism
    )
    # One breaker for every call this node makes to the bus's Redis: one Redis, one verdict.
    breaker = Breaker()
    shared = (
        SharedState(bus.client, config.bus_timeout_s, breaker=breaker)
        if bus is not None
        else None
    )
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
        shared_limit=shared.take if shared else None,
        counters=server.counters,
        stops=stops,
        allowed_origins=frozenset(config.allowed_origins),
        tls=config.tls,
    )

    # An erasure's deletions, delivered here and published on the bus in their order.
    def erased(events: list[StoredMessage]) -> None:
        for event in events:
            chat.feed.stored_here(event)

    accounts.on_erased = erased
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
        check_stopped=stops.check,
        check_connect=connect_check(hooks) if hooks is not None else None,
    )
    handler: ChatHandler | DisconnectHook = chat
    deliveries = None
    if (
        hooks is not None
    ):  # without --hook-url nothing of the hooks runs, nothing is written
        chat.hooks = ChatHooks(hooks, config.hook_say_rooms, chat.hub.is_member)
        deliveries = HookDeliveries(store, hooks)
        handler = DisconnectHook(
            chat.on_open, chat.on_message, chat.on_close, deliveries, node
        )
        deliveries.start()
    server.add_websocket(
        "/ws",
        handler,
        subprotocols=(SUBPROTOCOL,),
        authenticate=authenticate,
        max_message_bytes=wire.MAX_FRAME_BYTES,
        keep_headers=False,  # the chat reads its members' headers in the upgrade alone
    )
    if config.echo:
        server.add_websocket("/echo", echo)

    connections = None
    # Several nodes: a user's and an address's WebSockets are counted across all of them.
    if bus is not None:
        connections = SharedConnections(
            bus.client, config.bus_timeout_s, breaker=breaker
        )
        await connections.start()
        server.limits.shared = connections

    sweep = RetentionSweep(store, config.history_max_age_s, config.history_max_messages)
    sweep.start()

    async def close() -> None:
        await sweep.close()
        if connections is not None:  # the bus's client is closed with the chat
            await connections.close()
        await stops.close()
        await chat.close()  # every accepted message is stored before the store closes
        if deliveries is not None:  # the disconnects of the closed connections written
            await deliveries.close()
        accounts.close()
        await store.close()

    server.on_shutdown.append(close)
    server.readiness.add(
        "store", lambda: health.check(store.ping, lambda: write_probe(store.engine))
    )
    if bus is not None:
        server.readiness.add("bus", bus.client.ping)
        server.counters.bus.configured = True
        server.counters.bus.connected_probe = lambda: bus.connected
        server.counters.bus.refused_probe = lambda: {
            "forged": bus.forged,
            "stale": bus.stale,
        }
    server.on_shutdown.append(server.readiness.close)
    if metrics is not None:
        await metrics.start()
        server.metrics_port = metrics.port
    return ChatApp(store, chat, bus, health, tokens, handler, authenticate)
