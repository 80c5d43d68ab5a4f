"""Server settings: every limit is a named default with its unit in the name.

Settings come from three places, later ones winning: these defaults, ``RAWWS_*``
environment variables, and command-line flags (``rawws.cli``). Every value is
checked here, whichever place it came from (``RULES``: the range of each number;
``ServerConfig.__post_init__``: the settings that go together), and a value that
cannot be used raises ``SettingError`` naming the setting, so a flag and its
variable are refused alike.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rawws.core.deflate import (
    DEFAULT_MEMORY_LEVEL,
    DEFAULT_WINDOW_BITS,
    SHARED,
    compression_mode,
)
from rawws.core.forwarded import TrustedProxies
from rawws.core.redact import HIDDEN, redact_url
from rawws.errors import SettingError

KiB = 1024
MiB = 1024 * KiB

# Limits
DEFAULT_MAX_MESSAGE_BYTES = 1 * MiB  # a bigger message is closed with 1009
DEFAULT_MAX_HEADER_BYTES = 16 * KiB  # request line + headers; more earns 431
DEFAULT_MAX_TARGET_BYTES = 8 * KiB  # the request target alone; more earns 414
DEFAULT_MAX_BODY_BYTES = 64 * KiB  # plain HTTP request bodies; more earns 413
DEFAULT_HANDSHAKE_TIMEOUT_S = 10.0  # a whole request must arrive within this
DEFAULT_KEEPALIVE_IDLE_S = 30.0  # idle HTTP keep-alive connections are closed
DEFAULT_PING_INTERVAL_S = 20.0  # WebSocket keepalive ping period (0 disables)
DEFAULT_PING_TIMEOUT_S = (
    20.0  # no pong within this: the peer is dead (1011, TCP dropped; core/keepalive.py)
)
DEFAULT_CLOSE_TIMEOUT_S = 10.0  # wait this long for the peer's close frame
DEFAULT_SHUTDOWN_TIMEOUT_S = 5.0  # graceful shutdown waits this long for closes
DEFAULT_DRAIN_DELAY_S = (
    0.0  # on SIGTERM, /readyz answers 503 this long before WebSockets get 1001
)
DEFAULT_READINESS_TIMEOUT_S = (
    2.0  # /readyz: the store (and bus) must answer within this
)
# At start the database must be connected to and its schema made within this (and every later new
# connection must be made within it): a host that takes the TCP connection and never answers is a
# one-line error after this long, not a minute of silence.
DEFAULT_DB_TIMEOUT_S = 10.0
DEFAULT_OUTBOX_MAX_BYTES = 4 * MiB  # queued, not yet written, per connection
DEFAULT_OUTBOX_MAX_MESSAGES = 4096  # queued messages per connection
DEFAULT_WRITE_HIGH_WATER_BYTES = 64 * KiB  # transport buffer that counts as "full"

# Chat (the text limit is part of the wire protocol: rawws.chat.wire.MAX_TEXT_CHARS)
DEFAULT_CHAT_MESSAGES_PER_S = 10.0  # frames a connection may send per second, sustained
DEFAULT_CHAT_MESSAGE_BURST = 20  # frames a connection may send at once
DEFAULT_CHAT_MAX_ROOMS_PER_CONNECTION = 32
DEFAULT_CHAT_MAX_BATCH_MESSAGES = 256  # messages per group commit
DEFAULT_CHAT_REPLAY_PAGE_MESSAGES = (
    500  # messages per replay query; the socket drains between pages
)

# Accounts and tokens
DEFAULT_ACCESS_TTL_S = 15 * 60.0  # access tokens from /auth/login
DEFAULT_TICKET_TTL_S = 30.0  # single-use tickets from /auth/ticket
DEFAULT_JWT_LEEWAY_S = 5.0  # clock skew allowed on exp, nbf and iat
DEFAULT_JWT_ISSUER = "rawws"
DEFAULT_JWT_AUDIENCE = "rawws"
# RFC 9106 §4 "second recommended option" (64 MiB, 3 passes, 4 lanes): argon2-cffi's default.
DEFAULT_ARGON2_TIME_COST = 3
DEFAULT_ARGON2_MEMORY_KIB = 64 * KiB
DEFAULT_ARGON2_PARALLELISM = 4
DEFAULT_LOGINS_PER_MINUTE_PER_USER = 10  # a burst of this many, refilled over a minute
DEFAULT_LOGINS_PER_MINUTE_PER_ADDRESS = 30
DEFAULT_REFRESH_TTL_S = (
    30 * 24 * 3600.0
)  # refresh tokens: a login lasts this long unused (rotated on every use)
DEFAULT_JWT_PUBLIC_NAMESPACE = (
    "ext"  # outside provider's subject "ada" is the user "ext:ada"
)
DEFAULT_REGISTRATIONS_PER_HOUR_PER_ADDRESS = 20  # each one is a full argon2 hash
DEFAULT_TICKETS_PER_MINUTE_PER_USER = 30
DEFAULT_WEBSOCKETS_PER_USER = (
    20  # open chat connections; one more earns 429 before the 101
)
DEFAULT_WEBSOCKETS_PER_ADDRESS = 200
DEFAULT_SEND_BUFFER_BYTES = (
    256 * KiB
)  # SO_SNDBUF of each WebSocket socket (0: the kernel's default)

# Several nodes
DEFAULT_BUS_HEARTBEAT_S = (
    1.0  # each node announces its rooms' newest ids this often (finds lost tails)
)
DEFAULT_BUS_TIMEOUT_S = (
    1.0  # any one call to the bus; a stalled Redis costs at most this
)
DEFAULT_PRESENCE_TTL_S = (
    5.0  # a node not heard from this long is dead: its users leave (+ one heartbeat)
)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything `rawws serve` can be told; immutable once the server starts."""

    host: str = "127.0.0.1"
    port: int = 8765
    echo: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    # permessage-deflate: "shared" (no context takeover, one deflate per fanned-out message),
    # "dedicated" (a compression context per connection) or "off"; True/False mean shared/off.
    compression: str = SHARED
    compression_window_bits: int = (
        DEFAULT_WINDOW_BITS  # 9..15; a client's offer may lower it
    )
    compression_memory_level: int = (
        DEFAULT_MEMORY_LEVEL  # zlib memLevel 1..9 of a dedicated context
    )
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_target_bytes: int = DEFAULT_MAX_TARGET_BYTES
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    handshake_timeout_s: float = DEFAULT_HANDSHAKE_TIMEOUT_S
    keepalive_idle_s: float = DEFAULT_KEEPALIVE_IDLE_S
    ping_interval_s: float = DEFAULT_PING_INTERVAL_S
    ping_timeout_s: float = DEFAULT_PING_TIMEOUT_S
    close_timeout_s: float = DEFAULT_CLOSE_TIMEOUT_S
    shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S
    drain_delay_s: float = DEFAULT_DRAIN_DELAY_S
    readiness_timeout_s: float = DEFAULT_READINESS_TIMEOUT_S
    db_timeout_s: float = DEFAULT_DB_TIMEOUT_S
    log_format: str = "text"  # or "json": one object per line
    outbox_max_bytes: int = DEFAULT_OUTBOX_MAX_BYTES
    outbox_max_messages: int = DEFAULT_OUTBOX_MAX_MESSAGES
    write_high_water_bytes: int = DEFAULT_WRITE_HIGH_WATER_BYTES
    # Chat
    chat_messages_per_s: float = DEFAULT_CHAT_MESSAGES_PER_S
    chat_message_burst: int = DEFAULT_CHAT_MESSAGE_BURST
    chat_max_rooms_per_connection: int = DEFAULT_CHAT_MAX_ROOMS_PER_CONNECTION
    chat_max_batch_messages: int = DEFAULT_CHAT_MAX_BATCH_MESSAGES
    chat_replay_page_messages: int = DEFAULT_CHAT_REPLAY_PAGE_MESSAGES
    # Accounts and tokens
    data_dir: str = "rawws-data"  # SQLite file and the generated JWT secret live here
    db_url: str | None = field(
        default=None, repr=False
    )  # None: SQLite in data_dir; or postgresql+asyncpg://…
    jwt_secret: str | None = field(
        default=None, repr=False
    )  # None: generated once, kept in data_dir
    jwt_issuer: str = DEFAULT_JWT_ISSUER
    jwt_audience: str = DEFAULT_JWT_AUDIENCE
    jwt_public_key: str | None = None  # PEM file of an outside identity provider
    jwt_public_algorithm: str = "RS256"
    jwt_public_namespace: str = DEFAULT_JWT_PUBLIC_NAMESPACE
    access_ttl_s: float = DEFAULT_ACCESS_TTL_S
    ticket_ttl_s: float = DEFAULT_TICKET_TTL_S
    refresh_ttl_s: float = DEFAULT_REFRESH_TTL_S
    allowed_origins: tuple[str, ...] = ()  # besides the server's own origin
    # Peers whose X-Forwarded-For / Forwarded / X-Forwarded-Proto are believed (addresses, CIDRs, "*")
    forwarded_allow_ips: tuple[str, ...] = ()
    # Operations
    metrics_port: int | None = None  # None: no /metrics listener; 0 picks a free port
    metrics_host: str = "127.0.0.1"  # the /metrics listener is never public by accident
    argon2_time_cost: int = DEFAULT_ARGON2_TIME_COST
    argon2_memory_kib: int = DEFAULT_ARGON2_MEMORY_KIB
    argon2_parallelism: int = DEFAULT_ARGON2_PARALLELISM
    logins_per_minute_per_user: int = DEFAULT_LOGINS_PER_MINUTE_PER_USER
    logins_per_minute_per_address: int = DEFAULT_LOGINS_PER_MINUTE_PER_ADDRESS
    registrations_per_hour_per_address: int = DEFAULT_REGISTRATIONS_PER_HOUR_PER_ADDRESS
    tickets_per_minute_per_user: int = DEFAULT_TICKETS_PER_MINUTE_PER_USER
    websockets_per_user: int = DEFAULT_WEBSOCKETS_PER_USER
    websockets_per_address: int = DEFAULT_WEBSOCKETS_PER_ADDRESS
    send_buffer_bytes: int = DEFAULT_SEND_BUFFER_BYTES
    # Several nodes
    bus_url: str | None = field(
        default=None, repr=False
    )  # None: one node; or redis://host:port/db
    bus_heartbeat_s: float = DEFAULT_BUS_HEARTBEAT_S
    bus_timeout_s: float = DEFAULT_BUS_TIMEOUT_S
    presence_ttl_s: float = DEFAULT_PRESENCE_TTL_S
    workers: int = 1  # processes sharing the port (SO_REUSEPORT); above 1 needs bus_url
    reuse_port: bool = False  # listen with SO_REUSEPORT (each worker of --workers does)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "compression", compression_mode(self.compression))
        except ValueError as exc:
            raise SettingError(
                "compression", shown(self.compression), str(exc)
            ) from None
        for name in RULES:
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
        if self.log_format not in ("text", "json"):
            raise SettingError(
                "log_format", shown(self.log_format), "must be text or json"
            )
        if self.argon2_memory_kib < 8 * self.argon2_parallelism:
            raise SettingError(
                "argon2_memory_kib",
                shown(self.argon2_memory_kib),
                f"argon2 needs at least 8 KiB per lane: {8 * self.argon2_parallelism} or more for "
                f"argon2_parallelism {self.argon2_parallelism}",
            )
        try:
            TrustedProxies(
                self.forwarded_allow_ips
            )  # a bad entry is refused here, with its text
        except ValueError as exc:
            raise SettingError(
                "forwarded_allow_ips", shown(self.forwarded_allow_ips), str(exc)
            ) from None

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def replace(self, **changes: object) -> ServerConfig:
        """A copy with ``changes`` applied; ``None`` values leave a field alone."""
        kept: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **kept)


Rule = tuple[
    Callable[[Any], bool], str
]  # whether a value is allowed, and the rule said to whoever broke it


def _seconds(zero: str | None = None) -> Rule:
    """A duration: finite, above 0, or 0 too when 0 means something (``zero`` says what)."""
    if zero is None:
        return (
            lambda value: math.isfinite(value) and value > 0
        ), "must be more than 0 seconds"
    return (
        lambda value: math.isfinite(value) and value >= 0
    ), f"must be 0 ({zero}) or more seconds"


def _at_least(low: int, what: str = "") -> Rule:
    return (lambda value: value >= low), f"must be {low}{what} or more"


def _between(low: int, high: int, what: str = "") -> Rule:
    return (lambda value: low <= value <= high), f"must be {low} to {high}{what}"


_PORT = _between(0, 65535, " (0 picks a free port)")
_BYTES = _at_least(1, " byte")
_COUNT = _at_least(1)

#: The range of every number a server can be told; a field that is a number and is missing here fails a
#: test (``tests/cli/test_config.py``), so a new setting cannot skip its check.
RULES: dict[str, Rule] = {
    "port": _PORT,
    "metrics_port": _PORT,
    "compression_window_bits": _between(9, 15),
    "compression_memory_level": _between(1, 9),
    "max_message_bytes": _BYTES,
    "max_header_bytes": _BYTES,
    "max_target_bytes": _BYTES,
    "max_body_bytes": _BYTES,
    "handshake_timeout_s": _seconds(),
    "keepalive_idle_s": _seconds(),
    "ping_interval_s": _seconds(zero="no pings"),
    "ping_timeout_s": _seconds(),
    "close_timeout_s": _seconds(),
    "shutdown_timeout_s": _seconds(zero="no wait"),
    "drain_delay_s": _seconds(zero="no drain"),
    "readiness_timeout_s": _seconds(),
    "db_timeout_s": _seconds(),
    "outbox_max_bytes": _BYTES,
    "outbox_max_messages": _COUNT,
    "write_high_water_bytes": _BYTES,
    "chat_messages_per_s": (
        (lambda value: math.isfinite(value) and value > 0),
        "must be more than 0 a second",
    ),
    "chat_message_burst": _COUNT,
    "chat_max_rooms_per_connection": _COUNT,
    "chat_max_batch_messages": _COUNT,
    "chat_replay_page_messages": _COUNT,
    "access_ttl_s": _seconds(),
    "ticket_ttl_s": _seconds(),
    "refresh_ttl_s": _seconds(),
    "argon2_time_cost": _COUNT,
    "argon2_memory_kib": _at_least(8, " KiB"),
    "argon2_parallelism": _between(1, 2**24 - 1),
    "logins_per_minute_per_user": _COUNT,
    "logins_per_minute_per_address": _COUNT,
    "registrations_per_hour_per_address": _COUNT,
    "tickets_per_minute_per_user": _COUNT,
    "websockets_per_user": _COUNT,
    "websockets_per_address": _COUNT,
    "send_buffer_bytes": _at_least(0, " (the kernel's own size)"),
    "bus_heartbeat_s": _seconds(),
    "bus_timeout_s": _seconds(),
    "presence_ttl_s": _seconds(),
    "workers": _COUNT,
}


def check_setting(name: str, value: object) -> str | None:
    """What is wrong with ``value`` for setting ``name`` (its rule), or ``None`` when it may be used."""
    rule = RULES.get(name)
    if rule is None or value is None:
        return None
    allowed, said = rule
    return None if allowed(value) else said


#: Settings whose values are secrets or may hold one: shown redacted in every message.
_URLS = frozenset({"db_url", "bus_url"})
_SECRETS = frozenset({"jwt_secret"})


def shown(value: object, name: str = "") -> str:
    """A value as an error message may show it: numbers as typed (``-5``, not ``-5.0``), lists with commas,
    URLs without their password, secrets not at all."""
    if name in _SECRETS:
        return HIDDEN
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    text = "" if value is None else str(value)
    return redact_url(text) if name in _URLS else text


def quoted(text: str) -> str:
    """A value as a shell would need it, quoted only when it must be (empty, or with spaces)."""
    return (
        shlex.quote(text) if not text or any(char.isspace() for char in text) else text
    )


ENV_PREFIX = "RAWWS_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_EXPECTED = {
    int: "an integer",
    float: "a number",
    bool: "true or false (also 1/0, yes/no, on/off)",
}


def convert(raw: str, kind: type) -> object:
    """``raw`` as a value of ``kind``; ``ValueError("expected …")`` naming the type when it is not one."""
    if kind is tuple:
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    elif kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    else:
        return raw
    raise ValueError(f"expected {_EXPECTED[kind]}")


def setting_kind(name: str) -> type:
    """The type a setting's text converts to (``int`` for ``port``, ``tuple`` for ``allowed_origins``…)."""
    return _field_kind(_FIELDS[name].type)


#: ``RAWWS_*`` variables that are not server settings but are known (the clients' password).
KNOWN_OTHER_VARIABLES = frozenset({"RAWWS_PASSWORD"})


def setting_variables(aliases: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """Each setting's variables, the field's own name first (it wins): ``db_url`` → ``RAWWS_DB_URL``,
    ``RAWWS_DB`` (``aliases`` maps the flags' spellings to fields)."""
    by_field = {name: [ENV_PREFIX + name.upper()] for name in _FIELDS}
    for alias, name in (aliases or {}).items():
        if name in by_field and ENV_PREFIX + alias.upper() not in by_field[name]:
            by_field[name].append(ENV_PREFIX + alias.upper())
    return by_field


def variable_of(
    name: str,
    environ: Mapping[str, str] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> str | None:
    """The variable that sets setting ``name`` in ``environ`` (the one that wins), or ``None``."""
    environ = os.environ if environ is None else environ
    return next(
        (
            variable
            for variable in setting_variables(aliases)[name]
            if variable in environ
        ),
        None,
    )


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
    config = base or ServerConfig()
    changes: dict[str, Any] = {}  # values converted to each field's own type by convert
    named: dict[
        str, str
    ] = {}  # field → "RAWWS_X=value", for the message of a check that spans fields
    for name in _FIELDS:
        variable = variable_of(name, environ, aliases)
        if variable is None:
            continue
        raw = environ[variable]
        head = f"{variable}={quoted(shown(raw, name))}"
        try:
            value = convert(raw, setting_kind(name))
        except ValueError as exc:
            raise SettingError(name, shown(raw, name), str(exc), head) from None
        problem = check_setting(name, value)
        if problem is not None:
            raise SettingError(name, shown(raw, name), problem, head)
        changes[name], named[name] = value, head
    try:
        return dataclasses.replace(config, **changes)
    except SettingError as exc:
        raise exc.named(named[exc.setting]) if exc.setting in named else exc from None


def unknown_variables(
    environ: Mapping[str, str] | None = None, aliases: Mapping[str, str] | None = None
) -> list[str]:
    """``RAWWS_*`` variables that set nothing (a misspelling): the server warns about each at start."""
    environ = os.environ if environ is None else environ
    known = {ENV_PREFIX + name.upper() for name in _FIELDS}
    known |= {ENV_PREFIX + alias.upper() for alias in (aliases or {})}
    known |= KNOWN_OTHER_VARIABLES
    return sorted(
        name for name in environ if name.startswith(ENV_PREFIX) and name not in known
    )


def _field_kind(annotation: object) -> type:
    """The concrete type of a field annotation such as ``"str | None"``."""
    text = str(annotation)
    for name, kind in (
        ("bool", bool),
        ("int", int),
        ("float", float),
        ("tuple", tuple),
    ):
        if text.startswith(name):
            return kind
    return str


_FIELDS = {setting.name: setting for setting in dataclasses.fields(ServerConfig)}
