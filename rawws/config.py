"""Server settings: every limit is a named default with its unit in the name; every setting is
described once, on its field.

Settings come from these defaults, ``RAWWS_*`` variables and flags (``rawws.cli``), later
ones winning. Each ``ServerConfig`` field is declared by its group with its help text and
unit (``rawws.core.settings``): `rawws serve`'s flags, ``--help`` and variables are built
from the fields. Every value is checked here whichever place it came from (``RULES``,
choices; ``__post_init__`` for settings that go together): ``SettingError`` names the
setting, so a flag and its variable are refused alike.
"""

# ruff: noqa: F405  # the DEFAULT_* names come from rawws.defaults' __all__
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rawws.config_hooks import HOOKS as HOOKS  # re-exported: the flags' sections
from rawws.config_hooks import HookSettings
from rawws.core.deflate import (
    COMPRESSION_MODES,
    DEFAULT_MEMORY_LEVEL,
    DEFAULT_WINDOW_BITS,
    SHARED,
    compression_mode,
)
from rawws.core.forwarded import TrustedProxies
from rawws.core.settings import (
    COUNT,
    INTEGER,
    LIST,
    PORT,
    RATE,
    SECONDS,
    SIZE,
    SWITCH,
    Group,
    Rule,
    Unit,
    at_least,
    problem_with,
    read_environment,
    rule_of,
    unit_of,
    variables,
)
from rawws.core.settings import shown as show_value
from rawws.defaults import *  # noqa: F403  # used below and re-exported: code imports them from here
from rawws.errors import SettingError

MODE = Unit(None, compression_mode)  # true/false, 1/0… too: shared/off
KEPT = Unit("N", INTEGER.parse, rule=at_least(0), zero="no limit")  # 0: every one kept

LISTEN = Group("listening")
WEBSOCKET = Group("WebSocket", "each WebSocket connection")
HTTP = Group("HTTP", "each HTTP request, the upgrade's too")
CHAT = Group("chat", "the chat on /ws, per connection")
STORE = Group("store", "users and messages")
ACCOUNTS = Group(
    "accounts and tokens",
    "RAWWS_JWT_SECRET sets the HS256 secret (32 bytes or more) instead of a generated "
    "one; it has no flag, as a command line is no place for a secret",
)
NODES = Group("several nodes", "see docs/cluster.md")
OPERATIONS = Group("operations")


@dataclass(frozen=True, slots=True)
class ServerConfig(HookSettings):
    """Everything `rawws serve` can be told (each field with its group, help and unit; the hooks'
    in ``rawws.config_hooks``)."""

    host: str = LISTEN("127.0.0.1", "address to listen on", metavar="HOST")
    port: int = LISTEN(8765, "port to listen on", PORT)
    echo: bool = LISTEN(False, "add the unauthenticated /echo endpoint", SWITCH)
    tls_cert: str | None = LISTEN(
        None, "PEM certificate chain: serve https:// and wss://", metavar="FILE"
    )
    tls_key: str | None = LISTEN(None, "PEM private key of --tls-cert", metavar="FILE")
    allowed_origins: tuple[str, ...] = LISTEN(
        (),
        "a browser Origin allowed to open /ws besides the server's own; repeatable",
        LIST,
        flag="--allow-origin",
        metavar="ORIGIN",
        repeat=True,
    )
    forwarded_allow_ips: tuple[str, ...] = LISTEN(
        (),
        "comma list of proxies (addresses, CIDRs or *) whose X-Forwarded-For, "
        "Forwarded and X-Forwarded-Proto are believed",
        LIST,
    )
    compression: str = WEBSOCKET(
        SHARED,
        "permessage-deflate: shared (no context takeover: a fanned-out message is "
        "deflated once), dedicated (a context per connection: ~20 KiB more each) or off",
        MODE,
        choices=COMPRESSION_MODES,
        negative=("--no-compression", "off"),
    )
    compression_window_bits: int = WEBSOCKET(
        DEFAULT_WINDOW_BITS,
        "largest deflate window either side may use",
        INTEGER.within(9, 15),
    )
    compression_memory_level: int = WEBSOCKET(
        DEFAULT_MEMORY_LEVEL,
        "zlib memLevel of a dedicated context",
        INTEGER.within(1, 9),
    )
    max_message_bytes: int = WEBSOCKET(
        DEFAULT_MAX_MESSAGE_BYTES,
        "largest message, after inflation; more is closed with 1009",
        SIZE,
    )
    ping_interval_s: float = WEBSOCKET(
        DEFAULT_PING_INTERVAL_S,
        "time between keepalive pings",
        SECONDS.zero_means("no pings"),
    )
    ping_timeout_s: float = WEBSOCKET(
        DEFAULT_PING_TIMEOUT_S,
        "time for a pong; then 1011 and TCP dropped",
        SECONDS,
    )
    close_timeout_s: float = WEBSOCKET(
        DEFAULT_CLOSE_TIMEOUT_S,
        "time for the peer's close frame; then TCP dropped",
        SECONDS,
    )
    outbox_max_bytes: int = WEBSOCKET(
        DEFAULT_OUTBOX_MAX_BYTES,
        "queued, not yet written, per connection; more closes it (1008 slow consumer)",
        SIZE,
    )
    outbox_max_messages: int = WEBSOCKET(
        DEFAULT_OUTBOX_MAX_MESSAGES, "messages queued per connection, likewise", COUNT
    )
    write_high_water_bytes: int = WEBSOCKET(
        DEFAULT_WRITE_HIGH_WATER_BYTES,
        "a connection's transport buffer counts as full (the outbox holds) past this",
        SIZE,
        flag="--write-high-water",
    )
    send_buffer_bytes: int = WEBSOCKET(
        DEFAULT_SEND_BUFFER_BYTES,
        "SO_SNDBUF of each WebSocket socket (0: the kernel's own), so that the "
        "outbox bound decides when a reader is too slow",
        SIZE,
        flag="--send-buffer",
        rule=at_least(0, " (the kernel's own size)"),
    )
    inflate_bytes_per_s: int = WEBSOCKET(
        DEFAULT_INFLATE_BYTES_PER_S,
        "bytes a connection's compressed messages may inflate to a second (plain payload is not counted); "
        "past it (a sixteenth of a second's worth at once) its socket is not read until it refills",
        SIZE,
        flag="--inflate-bytes-per-second",
    )
    read_frames_per_s: float = WEBSOCKET(
        DEFAULT_READ_FRAMES_PER_S,
        "frames a connection may have processed a second, likewise",
        RATE,
        flag="--read-frames-per-second",
    )
    message_timeout_s: float = WEBSOCKET(
        DEFAULT_MESSAGE_TIMEOUT_S,
        "time for a whole message from its first fragment; then 1008",
        SECONDS.zero_means("no limit"),
    )
    max_header_bytes: int = HTTP(
        DEFAULT_MAX_HEADER_BYTES, "request line and headers; more earns 431", SIZE
    )
    max_target_bytes: int = HTTP(
        DEFAULT_MAX_TARGET_BYTES, "the request target alone; more earns 414", SIZE
    )
    max_body_bytes: int = HTTP(
        DEFAULT_MAX_BODY_BYTES, "a plain HTTP request's body; more earns 413", SIZE
    )
    handshake_timeout_s: float = HTTP(
        DEFAULT_HANDSHAKE_TIMEOUT_S,
        "time for a whole request (or the TLS handshake); then 408",
        SECONDS,
    )
    keepalive_idle_s: float = HTTP(
        DEFAULT_KEEPALIVE_IDLE_S,
        "idle time before a keep-alive connection is closed",
        SECONDS,
    )
    chat_messages_per_s: float = CHAT(
        DEFAULT_CHAT_MESSAGES_PER_S,
        "frames a connection may send a second, sustained",
        RATE,
        flag="--chat-messages-per-second",
    )
    chat_message_burst: int = CHAT(
        DEFAULT_CHAT_MESSAGE_BURST, "frames a connection may send at once", COUNT
    )
    chat_max_rooms_per_connection: int = CHAT(
        DEFAULT_CHAT_MAX_ROOMS_PER_CONNECTION, "rooms a connection may be in", COUNT
    )
    chat_max_batch_messages: int = CHAT(
        DEFAULT_CHAT_MAX_BATCH_MESSAGES, "messages stored per group commit", COUNT
    )
    chat_replay_page_messages: int = CHAT(
        DEFAULT_CHAT_REPLAY_PAGE_MESSAGES,
        "messages per replay query",
        COUNT,
    )
    presence_grace_s: float = CHAT(
        DEFAULT_PRESENCE_GRACE_S,
        "a user whose last connection closed stays present this long (a reload is no leave)",
        SECONDS.zero_means("gone at once"),
        flag="--presence-grace",
    )
    data_dir: str = STORE(
        "rawws-data", "the SQLite file and the generated JWT secret", metavar="DIR"
    )
    db_url: str | None = STORE(
        None,
        "database URL, e.g. postgresql+asyncpg://user@host/db",
        flag="--db",
        metavar="URL",
        unset="SQLite in --data-dir",
        url=True,
        repr=False,
    )
    db_timeout_s: float = STORE(
        DEFAULT_DB_TIMEOUT_S,
        "time to connect to the database (at start: to make its schema too)",
        SECONDS,
    )
    history_max_age_s: float = STORE(
        0.0,
        "messages older than this are removed from every room, oldest first",
        SECONDS.zero_means("kept forever"),
        flag="--history-max-age",
    )
    history_max_messages: int = STORE(
        0,
        "each room keeps its newest N messages; older ones are removed",
        KEPT,
        flag="--history-max-messages",
    )
    jwt_secret: str | None = ACCOUNTS(
        None, "HS256 secret", flag=None, unset="generated", secret=True, repr=False
    )
    jwt_issuer: str = ACCOUNTS(DEFAULT_JWT_ISSUER, "iss of every token", metavar="NAME")
    jwt_audience: str = ACCOUNTS(
        DEFAULT_JWT_AUDIENCE, "aud of every token", metavar="NAME"
    )
    jwt_public_key: str | None = ACCOUNTS(
        None,
        "PEM public key of an outside identity provider whose tokens to accept",
        metavar="FILE",
    )
    jwt_public_algorithm: str = ACCOUNTS(
        "RS256", "its algorithm", choices=("RS256", "ES256", "EdDSA")
    )
    jwt_public_namespace: str = ACCOUNTS(
        DEFAULT_JWT_PUBLIC_NAMESPACE,
        "its users' prefix: its subject ada is the user PREFIX:ada",
        metavar="PREFIX",
    )
    access_ttl_s: float = ACCOUNTS(
        DEFAULT_ACCESS_TTL_S, "an access token's life", SECONDS
    )
    ticket_ttl_s: float = ACCOUNTS(
        DEFAULT_TICKET_TTL_S, "a single-use ticket's life", SECONDS
    )
    refresh_ttl_s: float = ACCOUNTS(
        DEFAULT_REFRESH_TTL_S,
        "a refresh token's life unused",
        SECONDS,
    )
    argon2_time_cost: int = ACCOUNTS(DEFAULT_ARGON2_TIME_COST, "argon2id passes", COUNT)
    argon2_memory_kib: int = ACCOUNTS(
        DEFAULT_ARGON2_MEMORY_KIB,
        "argon2id memory, in KiB",
        INTEGER,
        rule=at_least(8, " KiB"),
    )
    argon2_parallelism: int = ACCOUNTS(
        DEFAULT_ARGON2_PARALLELISM, "argon2id lanes", INTEGER.within(1, 2**24 - 1)
    )
    logins_per_minute_per_user: int = ACCOUNTS(
        DEFAULT_LOGINS_PER_MINUTE_PER_USER,
        "POST /auth/login per user from one address (an IPv6 /64), refilled over a minute; then 429",
        COUNT,
    )
    logins_per_minute_per_address: int = ACCOUNTS(
        DEFAULT_LOGINS_PER_MINUTE_PER_ADDRESS, "the same per client address", COUNT
    )
    registrations_per_hour_per_address: int = ACCOUNTS(
        DEFAULT_REGISTRATIONS_PER_HOUR_PER_ADDRESS,
        "account registrations per client address (each is a full argon2 hash)",
        COUNT,
    )
    tickets_per_minute_per_user: int = ACCOUNTS(
        DEFAULT_TICKETS_PER_MINUTE_PER_USER, "POST /auth/ticket per user", COUNT
    )
    websockets_per_user: int = ACCOUNTS(
        DEFAULT_WEBSOCKETS_PER_USER,
        "open chat connections per user; then 429",
        COUNT,
    )
    websockets_per_address: int = ACCOUNTS(
        DEFAULT_WEBSOCKETS_PER_ADDRESS,
        "open WebSockets per client address (behind a proxy: the forwarded one)",
        COUNT,
    )
    bus_url: str | None = NODES(
        None,
        "Redis shared by several nodes, e.g. redis://:PASSWORD@127.0.0.1:6379/0",
        flag="--bus",
        metavar="URL",
        unset="one node, no bus",
        url=True,
        repr=False,
    )
    bus_heartbeat_s: float = NODES(
        DEFAULT_BUS_HEARTBEAT_S,
        "time between a node's announcements of its rooms' newest ids",
        SECONDS,
    )
    bus_timeout_s: float = NODES(
        DEFAULT_BUS_TIMEOUT_S, "time for any one call to the bus", SECONDS
    )
    presence_ttl_s: float = NODES(
        DEFAULT_PRESENCE_TTL_S,
        "silence after which a node is dead: its users leave",
        SECONDS,
    )
    workers: int = NODES(
        1, "processes sharing the port, one core each; more than 1 needs --bus", COUNT
    )
    reuse_port: bool = NODES(
        False, "listen with SO_REUSEPORT (each worker of --workers does)", SWITCH
    )
    shutdown_timeout_s: float = OPERATIONS(
        DEFAULT_SHUTDOWN_TIMEOUT_S,
        "on shutdown, time for the closing handshakes",
        SECONDS.zero_means("no wait"),
    )
    drain_delay_s: float = OPERATIONS(
        DEFAULT_DRAIN_DELAY_S,
        "on SIGTERM, time /readyz answers 503 before WebSockets get 1001",
        SECONDS.zero_means("no drain"),
    )
    readiness_timeout_s: float = OPERATIONS(
        DEFAULT_READINESS_TIMEOUT_S,
        "/readyz: time for the store (and bus) to answer",
        SECONDS,
    )
    metrics_port: int | None = OPERATIONS(
        None, "serve Prometheus /metrics on this port", PORT, unset="off"
    )
    metrics_host: str = OPERATIONS(
        "127.0.0.1", "address of the /metrics listener", metavar="HOST"
    )
    log_format: str = OPERATIONS(
        "text",
        "log lines as text, or json: one object per line",
        choices=("text", "json"),
    )

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "compression", compression_mode(self.compression))
        except ValueError as exc:
            raise SettingError(
                "compression", shown(self.compression), str(exc)
            ) from None
        for name in _FIELDS:
            problem = check_setting(name, getattr(self, name))
            if problem is not None:
                raise SettingError(name, shown(getattr(self, name), name), problem)
        if (self.tls_cert is None) != (self.tls_key is None):
            given, missing = (
                ("tls_cert", "key")
                if self.tls_key is None
                else ("tls_key", "certificate")
            )
            raise SettingError(
                given, shown(getattr(self, given)), f"TLS needs a {missing} too"
            )
        if self.argon2_memory_kib < 8 * self.argon2_parallelism:
            raise SettingError(
                "argon2_memory_kib",
                shown(self.argon2_memory_kib),
                f"argon2 needs at least 8 KiB per lane: {8 * self.argon2_parallelism} or more for "
                f"argon2_parallelism {self.argon2_parallelism}",
            )
        try:  # a bad entry is refused with its text
            TrustedProxies(self.forwarded_allow_ips)
        except ValueError as exc:
            raise SettingError(
                "forwarded_allow_ips", shown(self.forwarded_allow_ips), str(exc)
            ) from None
        self.check_hooks()

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def replace(self, **changes: object) -> ServerConfig:
        """A copy with ``changes`` applied; ``None`` values leave a field alone."""
        kept: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **kept)


#: Every setting's field, in declaration order: what the command line is built from.
SETTINGS = dataclasses.fields(ServerConfig)
_FIELDS = {setting.name: setting for setting in SETTINGS}

#: The range of every number a server can be told (its field's rule, else its unit's); a number without
#: one fails a test (``tests/cli/test_config.py``), so a new setting cannot skip its check.
RULES: dict[str, Rule] = {
    name: rule for name, setting in _FIELDS.items() if (rule := rule_of(setting))
}


def check_setting(name: str, value: object) -> str | None:
    """What is wrong with ``value`` for setting ``name`` (its choices or rule), or ``None`` when it may be used."""
    return problem_with(_FIELDS[name], value) if name in _FIELDS else None


def shown(value: object, name: str = "") -> str:
    """A value as an error message may show it (``rawws.core.settings.shown``): a URL's password and
    a secret never."""
    return show_value(value, _FIELDS.get(name))


def setting_value(name: str, raw: str) -> object:
    """A setting's text, a flag's or a variable's, read by its unit (a size may be ``1MiB``);
    ``ValueError("expected …")`` when it is not one."""
    return unit_of(_FIELDS[name]).parse(raw)


ENV_PREFIX = "RAWWS_"

#: ``RAWWS_*`` variables that are not server settings but are known (the clients' password).
KNOWN_OTHER_VARIABLES = frozenset({"RAWWS_PASSWORD"})


def setting_variables(aliases: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """Each setting's variables, the field's own name first (it wins): ``db_url`` → ``RAWWS_DB_URL``,
    ``RAWWS_DB`` (``aliases`` maps the flags' spellings to fields: ``flag_aliases()``)."""
    return variables(SETTINGS, ENV_PREFIX, aliases)


def variable_of(
    name: str,
    environ: Mapping[str, str] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> str | None:
    """The variable that sets setting ``name`` in ``environ`` (the one that wins), or ``None``."""
    environ = os.environ if environ is None else environ
    names = setting_variables(aliases)[name]
    return next((variable for variable in names if variable in environ), None)


def from_env(
    environ: Mapping[str, str] | None = None,
    base: ServerConfig | None = None,
    aliases: Mapping[str, str] | None = None,
) -> ServerConfig:
    """Apply ``RAWWS_<FIELD>`` variables (e.g. ``RAWWS_PORT=9000``) over ``base``.

    ``aliases`` maps other names to fields: `rawws serve` passes each flag's own
    spelling (``RAWWS_DB`` for ``db_url``, ``RAWWS_PING_INTERVAL`` for ``ping_interval_s``).
    The field's name wins when both are set. A value that is not of the setting's type or
    breaks its rule raises ``SettingError`` said of the variable (``RAWWS_PORT=abc: expected an integer``).
    """
    environ = os.environ if environ is None else environ
    return read_environment(base or ServerConfig(), environ, ENV_PREFIX, aliases)


def unknown_variables(
    environ: Mapping[str, str] | None = None, aliases: Mapping[str, str] | None = None
) -> list[str]:
    """``RAWWS_*`` variables that set nothing (a misspelling): the server warns about each at start."""
    environ = os.environ if environ is None else environ
    known = {name for names in setting_variables(aliases).values() for name in names}
    known |= KNOWN_OTHER_VARIABLES
    return sorted(
        name for name in environ if name.startswith(ENV_PREFIX) and name not in known
    )
