"""Argument parsing for `rawws serve|send|chat`: the flags, their types and the `--help` texts.

Kept apart from what the commands do so a new flag is one edit here (plus the config field it feeds),
and so the parsing rules (sizes, headers, room names) can be tested without running anything.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Sequence
from typing import NoReturn

from rawws._version import __version__
from rawws.chat.wire import DEFAULT_ROOM
from rawws.chatclient.commands import ROOM_RULE, valid_room
from rawws.chatclient.reconnect import DEFAULT_BACKOFF
from rawws.cli.exits import (
    CHAT_EXIT_CODES,
    SEND_EXIT_CODES,
    SERVE_EXIT_CODES,
)
from rawws.cli.flags import add_serve_flags
from rawws.config import DEFAULT_MAX_MESSAGE_BYTES
from rawws.core import settings
from rawws.core.headers import is_token
from rawws.errors import UsageError


def parse_size(text: str) -> int:
    """``1048576``, ``1MiB``, ``64k`` → bytes (a client's flag; the server's read theirs by their unit)."""
    try:
        size = settings.parse_size(text)
    except ValueError:
        size = -1
    if size < 0:
        raise argparse.ArgumentTypeError(
            f"not a size: {text!r} (try {settings.SIZE_EXAMPLES})"
        )
    return size


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
    commands.add_parser(  # parsed by `rawws.cli.admin`; listed here for `rawws --help`
        "admin",
        help="disable or enable an account, grant server admin (on the server's machine)",
        add_help=False,
    )
    commands.add_parser(  # parsed by `rawws.cli.api_keys`; listed here for `rawws --help`
        "api-key",
        help="create, list or revoke the server API's keys (on the server's machine)",
        add_help=False,
    )
    add_client_commands(commands)
    return parser


SERVE_DESCRIPTION = (
    "Run the server. Every setting is also a variable: RAWWS_ and the flag's name "
    "(RAWWS_PING_INTERVAL for --ping-interval, RAWWS_DB for --db) or the setting's own "
    "(RAWWS_PING_INTERVAL_S, RAWWS_DB_URL: the README's table); a flag wins over a "
    "variable, and an unknown RAWWS_* is warned about. A SIZE is bytes or has a unit "
    "(64KiB, 16MiB); SECONDS may have a fraction; a LIST is comma-separated."
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
            close = closest_flag(name, list(self._option_string_actions))
            hint = (
                f"did you mean {close[0]}? " if close and name.startswith("--") else ""
            )
            raise UsageError(
                f"{name}: not a flag of rawws serve ({hint}{SEE_SERVE_HELP})"
            )
        return args


def closest_flag(name: str, flags: list[str]) -> list[str]:
    """The real flag ``name`` most likely meant: among those of its first word (``--db-url`` →
    ``--db``, not the merely similar ``--hook-url``) if any, else among all."""
    word = name.removeprefix("--").split("-", 1)[0]
    kin = [flag for flag in flags if flag.removeprefix("--").split("-", 1)[0] == word]
    return difflib.get_close_matches(name, kin, n=1, cutoff=0.0) or (
        difflib.get_close_matches(name, flags, n=1)
    )


def build_serve_parser() -> ServeParser:
    """What `rawws serve …` is parsed with (``build_parser``'s ``serve`` has the same flags, for the bench)."""
    parser = ServeParser(
        prog="rawws serve", description=SERVE_DESCRIPTION, epilog=SERVE_EXIT_CODES
    )
    add_serve_flags(parser)
    return parser


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
  printed on stdout, one per line: text as it came (control and bidi characters, newlines
  included, escaped as \n, \x1b, \u202e when stdout is a terminal), binary as hex (`xxd -r -p` gives back the bytes). Nothing else
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
  Joins --room (default lobby) and shows its last 20 messages. Messages show as
  "HH:MM #ID [room] user: text" (ID is what /edit and /delete take), presence as
  "* user joined room", errors as "! message". A typed line is said in the current room
  (it shows once the server delivers it back); commands: /join ROOM (and talk there),
  /leave [ROOM], /who [ROOM], /history [N], /rooms, /edit ID TEXT, /delete ID, /help, /quit.
  Lines are sent no faster than the server's rate (its welcome's limits): a paste or a pipe
  waits, in order, and a line the server dropped or could not store is sent again.
  After a dropped connection (close 1001, 1006, 1008, 1011-1014 -- not 1000, not a refused
  upgrade) it reconnects with a fresh ticket after a jittered, capped exponential backoff,
  re-joins every room with `since` = the last message id seen, and prints each missed
  message once. Ctrl-D, Ctrl-C or /quit close with 1000 (Ctrl-D, the end of piped input and
  /quit first wait until every line is stored, giving up after 5 s without progress; lines
  still not stored then exit 7).
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
        + CHAT_EXIT_CODES,
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
        help="largest message accepted (default "
        f"{settings.show_size(DEFAULT_MAX_MESSAGE_BYTES)}; more is closed with 1009)",
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
