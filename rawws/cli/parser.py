"""Argument parsing for `rawws serve|send|chat`: the flags, their types and the `--help` texts.

Kept apart from what the commands do so a new flag is one edit here (plus the config field it feeds),
and so the parsing rules (sizes, headers, room names) can be tested without running anything.
"""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Sequence
from typing import NoReturn

from rawws._version import __version__
from rawws.chat.wire import DEFAULT_ROOM
from rawws.chatclient.commands import ROOM_RULE, valid_room
from rawws.chatclient.reconnect import DEFAULT_BACKOFF
from rawws.cli.exits import CLIENT_EXIT_CODES, SEND_EXIT_CODES, SERVE_EXIT_CODES
from rawws.config import DEFAULT_DB_TIMEOUT_S
from rawws.core.headers import is_token
from rawws.errors import UsageError

_SIZE = re.compile(r"(\d+)\s*([kKmMgG]i?[bB]?)?")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """``1048576``, ``1MiB``, ``64k`` → bytes."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"not a size: {text!r} (try 1048576, 64KiB or 16MiB)"
        )
    unit = (match.group(2) or "")[:1].lower()
    return int(match.group(1)) * _UNITS[unit]


def flag_variables(command: argparse.ArgumentParser) -> dict[str, str]:
    """Each setting flag's own spelling as an environment name: ``--db`` → ``DB`` → ``db_url``."""
    aliases: dict[str, str] = {}
    for action in command._actions:
        for option in action.option_strings:
            if option.startswith("--") and action.dest not in ("help", "log_level"):
                name = option[2:].replace("-", "_").upper()
                if name.startswith("NO_"):
                    continue  # --no-compression: the variable is RAWWS_COMPRESSION=false
                aliases[name] = action.dest
    return aliases


def build_parser() -> argparse.ArgumentParser:
    """Every command and flag; the bench server builds its flags from here too, so both read alike."""
    parser = argparse.ArgumentParser(
        prog="rawws",
        description="WebSocket chat service on raw asyncio streams.",
        epilog="`rawws send --help` and `rawws chat --help` list the client's exit codes.",
    )
    parser.add_argument("--version", action="version", version=f"rawws {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the server",
        description=SERVE_DESCRIPTION,
        epilog=SERVE_EXIT_CODES,
    )
    add_serve_flags(serve)
    add_client_commands(commands)
    return parser


SERVE_DESCRIPTION = (
    "Run the server. Every setting can also be set in the environment, as RAWWS_<SETTING> "
    "(the names of the README's table, e.g. RAWWS_DB_URL, RAWWS_PING_INTERVAL_S) or as the flag's "
    "own spelling (RAWWS_DB, RAWWS_PING_INTERVAL); flags win. An unknown RAWWS_* is warned about."
)
SEE_SERVE_HELP = "see `rawws serve --help`"


class ServeParser(argparse.ArgumentParser):
    """`rawws serve`'s own parser: a flag that does not parse is one line naming it and exit 1 (``UsageError``),
    the rule for every first mistake of `rawws serve`, rather than argparse's usage text and exit 2.

    Numbers are taken as text here and converted by the config (``rawws.config.convert``), so a flag and its
    ``RAWWS_*`` variable get the same type and range checks and the same words.
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message.removeprefix('argument ')} ({SEE_SERVE_HELP})")

    def parse_serve(self, argv: Sequence[str]) -> argparse.Namespace:
        """The flags of ``argv``; an unknown one is refused by name, with the closest real one if any."""
        args, extras = self.parse_known_args(argv)
        if extras:
            unknown = next(
                (extra for extra in extras if extra.startswith("-")), extras[0]
            )
            name = unknown.split("=", 1)[0]
            close = difflib.get_close_matches(name, self._option_string_actions, n=1)
            hint = (
                f"did you mean {close[0]}? " if close and name.startswith("--") else ""
            )
            raise UsageError(
                f"{name}: not a flag of rawws serve ({hint}{SEE_SERVE_HELP})"
            )
        return args


def build_serve_parser() -> ServeParser:
    """What `rawws serve …` is parsed with (``build_parser``'s ``serve`` has the same flags, for the bench)."""
    parser = ServeParser(
        prog="rawws serve", description=SERVE_DESCRIPTION, epilog=SERVE_EXIT_CODES
    )
    add_serve_flags(parser)
    return parser


def flag_names(command: argparse.ArgumentParser) -> dict[str, str]:
    """Each setting's flag, as a message names it: ``db_url`` → ``--db`` (``--compression``, not ``--no-…``)."""
    names: dict[str, str] = {}
    for action in command._actions:
        for option in action.option_strings:
            if (
                option.startswith("--")
                and not option.startswith("--no-")
                and action.dest not in names
            ):
                names[action.dest] = option
    return names


def add_serve_flags(command: argparse.ArgumentParser) -> None:
    """`rawws serve`'s flags; each ``dest`` is the ``ServerConfig`` field it sets."""
    command.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    command.add_argument(
        "--port", help="port to listen on (default 8765; 0 picks a free one)"
    )
    command.add_argument(
        "--echo",
        action="store_true",
        default=None,
        help="add the unauthenticated /echo endpoint",
    )
    command.add_argument(
        "--tls-cert", help="PEM certificate chain: serve wss:// and https://"
    )
    command.add_argument("--tls-key", help="PEM private key for --tls-cert")
    command.add_argument(
        "--compression",
        choices=("shared", "dedicated", "off"),
        default=None,
        help="permessage-deflate: shared (default; no context takeover, one deflate per fanned-out message), "
        "dedicated (a compression context per connection) or off",
    )
    command.add_argument(
        "--no-compression",
        dest="compression",
        action="store_const",
        const="off",
        help="the same as --compression off",
    )
    command.add_argument(
        "--compression-window-bits",
        dest="compression_window_bits",
        metavar="9..15",
        help="largest deflate window either side may use (default 12; a client may ask for less)",
    )
    command.add_argument(
        "--max-message-size",
        dest="max_message_bytes",
        type=parse_size,
        help="largest message accepted, after decompression (default 1MiB; more is closed with 1009)",
    )
    command.add_argument(
        "--ping-interval",
        metavar="SECONDS",
        dest="ping_interval_s",
        help="seconds between keepalive pings (0: off)",
    )
    command.add_argument(
        "--ping-timeout",
        metavar="SECONDS",
        dest="ping_timeout_s",
        help="seconds to wait for a pong",
    )
    command.add_argument(
        "--handshake-timeout",
        metavar="SECONDS",
        dest="handshake_timeout_s",
        help="seconds for a whole request",
    )
    command.add_argument(
        "--data-dir",
        help="where the SQLite file and the generated JWT secret live (default ./rawws-data)",
    )
    command.add_argument(
        "--db",
        dest="db_url",
        help="database URL, e.g. postgresql+asyncpg://user@host/db (default: SQLite)",
    )
    command.add_argument(
        "--db-timeout",
        dest="db_timeout_s",
        metavar="SECONDS",
        help=f"at start, the database must be connected to and its schema made within this (default {DEFAULT_DB_TIMEOUT_S:g})",
    )
    command.add_argument(
        "--bus",
        dest="bus_url",
        help="Redis URL shared by several nodes, e.g. redis://127.0.0.1:6379/0 (default: one node, no bus)",
    )
    command.add_argument(
        "--allow-origin",
        dest="allowed_origins",
        action="append",
        help="a browser Origin allowed to open /ws besides the server's own (repeatable)",
    )
    command.add_argument(
        "--jwt-public-key",
        help="PEM public key of an outside identity provider whose tokens to accept",
    )
    command.add_argument(
        "--jwt-public-algorithm",
        choices=["RS256", "ES256", "EdDSA"],
        help="its algorithm (default RS256)",
    )
    command.add_argument(
        "--workers",
        help="processes sharing the port, one core each (default 1; more needs --bus)",
    )
    command.add_argument(
        "--jwt-public-namespace",
        help="prefix of the outside provider's users: its subject ada is the user <prefix>:ada (default ext)",
    )
    command.add_argument(
        "--refresh-ttl",
        dest="refresh_ttl_s",
        help="seconds a refresh token lasts unused (default 30 days)",
    )
    command.add_argument(
        "--websockets-per-user",
        help="open chat connections per user (default 20; one more earns 429)",
    )
    command.add_argument(
        "--websockets-per-address",
        help="open WebSockets per client address (default 200; behind a proxy: the forwarded client, see --forwarded-allow-ips)",
    )
    command.add_argument(
        "--registrations-per-hour-per-address",
        help="account registrations per client address (default 20)",
    )
    command.add_argument(
        "--tickets-per-minute-per-user", help="POST /auth/ticket per user (default 30)"
    )
    command.add_argument(
        "--send-buffer",
        dest="send_buffer_bytes",
        type=parse_size,
        help="SO_SNDBUF of each WebSocket socket (default 256KiB; 0: the kernel's), so the outbox bound decides",
    )
    command.add_argument(
        "--forwarded-allow-ips",
        dest="forwarded_allow_ips",
        help="comma list of proxy addresses/CIDRs (or *) whose X-Forwarded-For, Forwarded and "
        "X-Forwarded-Proto are believed (default: none)",
    )
    command.add_argument(
        "--drain-delay",
        dest="drain_delay_s",
        help="on SIGTERM, seconds /readyz answers 503 before WebSockets get 1001 (default 0)",
    )
    command.add_argument(
        "--metrics-port",
        help="serve Prometheus /metrics on this port (default: off; 0 picks a free one)",
    )
    command.add_argument(
        "--metrics-host", help="address of the /metrics listener (default 127.0.0.1)"
    )
    command.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    command.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="log lines as text or one JSON object per line (default text)",
    )
    command.set_defaults(
        env_aliases=flag_variables(command), flag_names=flag_names(command)
    )


DEFAULT_CLIENT_TIMEOUT_S = 10.0
PASSWORD_VARIABLE = "RAWWS_PASSWORD"

CHAT_URL_RULE = """\
URL and mode:
  with --user NAME   URL names the server: ws://HOST:PORT, wss://HOST:PORT, http://HOST:PORT
                     or https://HOST:PORT, or a full ws://HOST:PORT/ws. The chat endpoint is
                     /ws (or the path given); the login (POST /auth/login) and a fresh
                     single-use ticket per connection (POST /auth/ticket) are asked over
                     http:// or https:// (matching ws:// or wss://) on the same host and port.
                     The password comes from $RAWWS_PASSWORD, else it is asked for on the
                     terminal (not echoed). No token or ticket is ever printed.
  without --user     URL is a ws:// or wss:// URL, used as given. If its query holds
                     token= or ticket=, the chat protocol is spoken on it (a token= URL is
                     reopened after a drop, a ticket= one cannot be); otherwise every line
                     is sent as a raw text message (e.g. the /echo endpoint).
"""

SEND_URL_RULE = (
    CHAT_URL_RULE.split("  without --user")[0]
    + """\
  without --user     URL is a ws:// or wss:// URL, used as given, and MESSAGE is sent on it
                     as one raw message (no chat protocol).
"""
)

SEND_OUTPUT = """\
output (without --user):
  Every message received before the connection ends -- the replies to MESSAGE, which
  arrive before the server answers our close, and anything the server said first -- is
  printed on stdout, one per line: text as it came (control characters shown as ^X when
  stdout is a terminal), binary as hex (`xxd -r -p` gives back the bytes). Nothing else
  goes to stdout. With --user nothing is printed: the exit code says whether the message
  was stored.
"""

TRACE_RULE = """\
-v, --verbose:
  Each frame, as it is sent (>) or received (<), on stderr: "> text 5 B: hello",
  "< binary 3 B: 00 ff 0a", "> ping 4 B: 1a 2b 3c 4d", "< close 1000 (normal closure)".
  Sizes are of the data (after inflating, before compressing); long data is cut short.
"""

CHAT_BEHAVIOUR = """\
chat protocol:
  Joins --room (default lobby). Messages show as "HH:MM [room] user: text", presence as
  "* user joined room", errors as "! message". A typed line is said in the current room
  (it shows once the server delivers it back); commands: /join ROOM (and talk there),
  /leave [ROOM], /who [ROOM], /history [N], /rooms, /help, /quit.
  After a dropped connection (close 1001, 1006, 1008, 1011-1014 -- not 1000, not a refused
  upgrade) it reconnects with a fresh ticket after a jittered, capped exponential backoff,
  re-joins every room with `since` = the last message id seen, and prints each missed
  message once. Ctrl-D, Ctrl-C or /quit close with 1000 (Ctrl-D and /quit first wait up to
  5 s for the acks of what was just said).
"""


def add_client_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """``send`` and ``chat``: their --help ends with the URL rule and the exit codes a script relies on."""
    send = commands.add_parser(
        "send",
        help="send one message and close",
        description="Connect to URL, send MESSAGE, close with 1000, and print every message received "
        "meanwhile (the replies). With --user NAME: log in, join --room (default lobby), say MESSAGE there, "
        "wait for the server's ack, close with 1000.",
        epilog=SEND_URL_RULE
        + "\n"
        + SEND_OUTPUT
        + "\n"
        + TRACE_RULE
        + "\n"
        + SEND_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    send.add_argument(
        "url", metavar="URL", help="the server (with --user) or a ws:// or wss:// URL"
    )
    send.add_argument(
        "message",
        metavar="MESSAGE",
        help="the message; '-' reads it from stdin (one trailing newline is dropped from text)",
    )
    send.add_argument(
        "--binary",
        action="store_true",
        help="send a binary message (MESSAGE as UTF-8, or stdin's bytes)",
    )
    _add_user_options(send)
    _add_connection_options(send)

    chat = commands.add_parser(
        "chat",
        help="interactive client: type lines, see messages",
        description="Connect to URL and chat: with --user (or a token in the URL) in the rooms of the chat "
        "protocol, else as a raw text client that sends each typed line and prints each message received "
        "(those that arrive before the server answers our close too: the replies to piped lines). "
        "Ctrl-D, Ctrl-C or /quit close with 1000.",
        epilog=CHAT_URL_RULE
        + "\n"
        + CHAT_BEHAVIOUR
        + "\n"
        + TRACE_RULE
        + "\n"
        + CLIENT_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chat.add_argument(
        "url", metavar="URL", help="the server (with --user) or a ws:// or wss:// URL"
    )
    _add_user_options(chat)
    chat.add_argument(
        "--raw",
        action="store_true",
        help="raw text client even when the URL holds a token (no chat protocol)",
    )
    chat.add_argument(
        "--reconnect-attempts",
        type=_non_negative_int,
        default=DEFAULT_BACKOFF.attempts,
        metavar="N",
        help=f"attempts to reconnect after a drop before giving up (default {DEFAULT_BACKOFF.attempts}; 0: never)",
    )
    chat.add_argument(
        "--reconnect-delay",
        type=_positive_float,
        default=DEFAULT_BACKOFF.initial_s,
        metavar="SECONDS",
        help="the first attempt's delay, doubled per attempt, half of it random "
        f"(default {DEFAULT_BACKOFF.initial_s:g})",
    )
    chat.add_argument(
        "--reconnect-max-delay",
        type=_positive_float,
        default=DEFAULT_BACKOFF.cap_s,
        metavar="SECONDS",
        help=f"the longest delay between attempts (default {DEFAULT_BACKOFF.cap_s:g})",
    )
    _add_connection_options(chat)


def _add_user_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "-u",
        "--user",
        metavar="NAME",
        help=f"log in as NAME and speak the chat protocol (password: ${PASSWORD_VARIABLE} or a prompt)",
    )
    command.add_argument(
        "--room",
        type=_room_name,
        default=None,
        metavar="NAME",
        help=f"the room to join (default {DEFAULT_ROOM})",
    )


def _room_name(text: str) -> str:
    if not valid_room(text):
        raise argparse.ArgumentTypeError(ROOM_RULE)
    return text


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a count: {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {text!r}")
    return value


def _add_connection_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "-H",
        "--header",
        dest="headers",
        action="append",
        default=[],
        type=parse_header,
        metavar="'NAME: VALUE'",
        help="add a header to the upgrade request (repeatable)",
    )
    command.add_argument(
        "--subprotocol",
        dest="subprotocols",
        action="append",
        default=[],
        metavar="NAME",
        help="offer a subprotocol (repeatable, in order of preference)",
    )
    command.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_CLIENT_TIMEOUT_S,
        help="seconds for connecting and the handshake, for sending, and for closing "
        f"(default {DEFAULT_CLIENT_TIMEOUT_S:g})",
    )
    command.add_argument(
        "--insecure",
        action="store_true",
        help="wss://: do not check the server's certificate",
    )
    command.add_argument(
        "--no-compression",
        dest="compression",
        action="store_false",
        help="do not offer permessage-deflate",
    )
    command.add_argument(
        "--max-message-size",
        dest="max_message_bytes",
        type=parse_size,
        default=None,
        metavar="SIZE",
        help="largest message accepted (default 1MiB; more is closed with 1009)",
    )
    command.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show each frame sent and received on stderr (see below)",
    )
    command.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )


def parse_header(text: str) -> tuple[str, str]:
    """``'Authorization: Bearer x'`` → ``("Authorization", "Bearer x")``."""
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not is_token(name):
        raise argparse.ArgumentTypeError(f"not a header: {text!r} (try 'Name: value')")
    return name, value.strip()
