"""Command line: `rawws serve|send|chat …`. The only module that parses arguments or configures logging."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import re
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence

from rawws._version import __version__
from rawws.chat.protocol import DEFAULT_ROOM
from rawws.client import chat as chat_client
from rawws.client.chat import DEFAULT_BACKOFF, AuthFailed, Backoff, ChatState, ChatTarget, HttpExchange, NotStored
from rawws.client.connection import OK_CLOSE_CODES, ClientConnection, ConnectionClosed, connect
from rawws.client.terminal import chat, chat_session, terminal_for
from rawws.config import DEFAULT_MAX_MESSAGE_BYTES, ServerConfig, from_env
from rawws.core.client_handshake import HandshakeRejected, InvalidHandshake, InvalidURI, parse_uri
from rawws.server.app import setup_app
from rawws.server.server import Server, run_server

_SIZE = re.compile(r"(\d+)\s*([kKmMgG]i?[bB]?)?")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """``1048576``, ``1MiB``, ``64k`` → bytes."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 1048576, 64KiB or 16MiB)")
    unit = (match.group(2) or "")[:1].lower()
    return int(match.group(1)) * _UNITS[unit]


def build_parser() -> argparse.ArgumentParser:
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
        description="Run the server. Every flag can also be set as RAWWS_<NAME> (e.g. RAWWS_PORT=9000).",
    )
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8765; 0 picks a free one)")
    serve.add_argument("--echo", action="store_true", default=None, help="add the unauthenticated /echo endpoint")
    serve.add_argument("--tls-cert", help="PEM certificate chain: serve wss:// and https://")
    serve.add_argument("--tls-key", help="PEM private key for --tls-cert")
    serve.add_argument(
        "--no-compression",
        dest="compression",
        action="store_false",
        default=None,
        help="do not negotiate permessage-deflate",
    )
    serve.add_argument(
        "--max-message-size",
        dest="max_message_bytes",
        type=parse_size,
        help="largest message accepted, after decompression (default 1MiB; more is closed with 1009)",
    )
    serve.add_argument("--ping-interval", dest="ping_interval_s", type=float, help="seconds between keepalive pings (0: off)")
    serve.add_argument("--ping-timeout", dest="ping_timeout_s", type=float, help="seconds to wait for a pong")
    serve.add_argument("--handshake-timeout", dest="handshake_timeout_s", type=float, help="seconds for a whole request")
    serve.add_argument("--data-dir", help="where the SQLite file and the generated JWT secret live (default ./rawws-data)")
    serve.add_argument("--db", dest="db_url", help="database URL, e.g. postgresql+asyncpg://user@host/db (default: SQLite)")
    serve.add_argument(
        "--allow-origin",
        dest="allowed_origins",
        action="append",
        help="a browser Origin allowed to open /ws besides the server's own (repeatable)",
    )
    serve.add_argument("--jwt-public-key", help="PEM public key of an outside identity provider whose tokens to accept")
    serve.add_argument("--jwt-public-algorithm", choices=["RS256", "ES256", "EdDSA"], help="its algorithm (default RS256)")
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_client_commands(commands)
    return parser


# -- the client commands: `rawws send` and `rawws chat` ----------------------------------

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CANNOT_CONNECT = 3
EXIT_REFUSED = 4
EXIT_TIMEOUT = 5
EXIT_CLOSED_WITH_ERROR = 6
EXIT_NOT_STORED = 7  # `rawws send --user`: the chat server answered the message with an error
EXIT_INTERRUPTED = 130  # Ctrl-C before the connection was open

CLIENT_EXIT_CODES = f"""\
exit codes:
  {EXIT_OK}  done; the connection closed normally
  {EXIT_USAGE}  usage error (bad arguments or URL)
  {EXIT_CANNOT_CONNECT}  could not connect (name resolution, TCP, TLS)
  {EXIT_REFUSED}  the server refused the upgrade (HTTP status shown) or answered it wrongly,
     or refused the login (--user)
  {EXIT_TIMEOUT}  timed out (connecting, the handshake, or the closing handshake)
  {EXIT_CLOSED_WITH_ERROR}  the connection closed with an error code (shown), or was lost
     (chat: and reconnecting gave up)
"""
SEND_EXIT_CODES = CLIENT_EXIT_CODES + f"""\
  {EXIT_NOT_STORED}  --user: the server did not store the message (its error shown)
"""
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

SEND_URL_RULE = CHAT_URL_RULE.split("  without --user")[0] + """\
  without --user     URL is a ws:// or wss:// URL, used as given, and MESSAGE is sent on it
                     as one raw message (no chat protocol).
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


class ClientFailure(Exception):
    """A client command ends with this exit code and one line on stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def add_client_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    send = commands.add_parser(
        "send",
        help="send one message and close",
        description="Connect to URL, send MESSAGE, close with 1000. With --user NAME: log in, join "
        "--room (default lobby), say MESSAGE there, wait for the server's ack, close with 1000.",
        epilog=SEND_URL_RULE + "\n" + SEND_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    send.add_argument("url", metavar="URL", help="the server (with --user) or a ws:// or wss:// URL")
    send.add_argument(
        "message",
        metavar="MESSAGE",
        help="the message; '-' reads it from stdin (one trailing newline is dropped from text)",
    )
    send.add_argument(
        "--binary", action="store_true", help="send a binary message (MESSAGE as UTF-8, or stdin's bytes)"
    )
    _add_user_options(send)
    _add_connection_options(send)

    chat = commands.add_parser(
        "chat",
        help="interactive client: type lines, see messages",
        description="Connect to URL and chat: with --user (or a token in the URL) in the rooms of the chat "
        "protocol, else as a raw text client that sends each typed line and prints each message received. "
        "Ctrl-D, Ctrl-C or /quit close with 1000.",
        epilog=CHAT_URL_RULE + "\n" + CHAT_BEHAVIOUR + "\n" + CLIENT_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chat.add_argument("url", metavar="URL", help="the server (with --user) or a ws:// or wss:// URL")
    _add_user_options(chat)
    chat.add_argument(
        "--raw", action="store_true", help="raw text client even when the URL holds a token (no chat protocol)"
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
    if not chat_client.valid_room(text):
        raise argparse.ArgumentTypeError(chat_client.ROOM_RULE)
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
    command.add_argument("--insecure", action="store_true", help="wss://: do not check the server's certificate")
    command.add_argument(
        "--no-compression", dest="compression", action="store_false", help="do not offer permessage-deflate"
    )
    command.add_argument(
        "--max-message-size",
        dest="max_message_bytes",
        type=parse_size,
        default=None,
        metavar="SIZE",
        help="largest message accepted (default 1MiB; more is closed with 1009)",
    )
    command.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def parse_header(text: str) -> tuple[str, str]:
    """``'Authorization: Bearer x'`` → ``("Authorization", "Bearer x")``."""
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name):
        raise argparse.ArgumentTypeError(f"not a header: {text!r} (try 'Name: value')")
    return name, value.strip()


def _connect_options(args: argparse.Namespace, secure: bool | None = None) -> dict[str, object]:
    if secure is None:
        secure = args.url.lower().startswith("wss:")
    return {
        "subprotocols": args.subprotocols,
        "additional_headers": args.headers,
        "compression": "deflate" if args.compression else None,
        "max_size": args.max_message_bytes or DEFAULT_MAX_MESSAGE_BYTES,
        "open_timeout": args.timeout,
        "close_timeout": args.timeout,
        "insecure": args.insecure and secure,
    }


def _message_from(args: argparse.Namespace) -> str | bytes:
    if args.message != "-":
        return args.message.encode("utf-8") if args.binary else args.message
    data = sys.stdin.buffer.read()
    if args.binary:
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ClientFailure(EXIT_USAGE, "stdin is not UTF-8 text; use --binary to send bytes") from None
    return text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text


async def send_command(args: argparse.Namespace, message: str | bytes) -> None:
    ws = await connect(args.url, **_connect_options(args))  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(args.timeout):
            await ws.send(message)
    finally:
        await ws.close()
    _check_close(ws)


async def chat_command(args: argparse.Namespace) -> None:
    ws = await connect(args.url, **_connect_options(args))  # type: ignore[arg-type]
    compression = "compressed" if ws.compression else "uncompressed"
    subprotocol = f", subprotocol {ws.subprotocol}" if ws.subprotocol else ""
    print(f"connected to {_where(args.url)} ({compression}{subprotocol}); Ctrl-D or /quit to leave", flush=True)
    try:
        end = await chat(ws, terminal_for())
    finally:
        await ws.close()
    if end.by_user:
        _check_close(ws)
        return
    if end.code not in OK_CLOSE_CODES:
        raise ClientFailure(EXIT_CLOSED_WITH_ERROR, _closed_message(end.code, end.reason))
    print(_closed_message(end.code, end.reason), file=sys.stderr)


# -- the chat protocol: logging in, tickets, `send --user`, `chat --user` ------------------------


def speaks_chat(args: argparse.Namespace) -> bool:
    """``--user``, or (``rawws chat`` only, without ``--raw``) a token or ticket in the URL."""
    if args.user:
        return True
    return args.command == "chat" and not args.raw and chat_client.url_credential(args.url) is not None


def read_password(user: str) -> str:
    """``$RAWWS_PASSWORD``, else a prompt on the terminal without echo. Never printed, never logged."""
    password = os.environ.get(PASSWORD_VARIABLE)
    if password is None:
        try:
            os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
        except OSError:
            message = f"no terminal to ask for {user}'s password on: set {PASSWORD_VARIABLE}"
            raise ClientFailure(EXIT_USAGE, message) from None
        try:
            password = getpass.getpass(f"password for {user}: ")
        except EOFError:
            password = ""
    if not password:
        raise ClientFailure(EXIT_USAGE, f"no password given for {user}")
    return password


def _ssl_context(target: ChatTarget, insecure: bool) -> ssl.SSLContext | None:
    if not target.secure:
        return None
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def http_exchange(
    target: ChatTarget, exchange: HttpExchange, timeout: float, insecure: bool
) -> chat_client.HttpAnswer:
    """One HTTP request to the server, on its own connection, within ``timeout``."""
    context = _ssl_context(target, insecure)
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(
            target.host, target.port, ssl=context, server_hostname=target.host if context else None
        )
        try:
            writer.write(exchange.request())
            while True:
                answer = exchange.receive_data(await reader.read(65536))
                if answer is not None:
                    return answer
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()


class ChatLogin:
    """``--user``: one login, then a fresh single-use ticket per connection; logs in again if the token
    is refused (it expired). The password stays in this object only."""

    def __init__(self, target: ChatTarget, user: str, password: str, timeout: float, insecure: bool) -> None:
        self.target = target
        self.user = user
        self._password = password
        self._timeout = timeout
        self._insecure = insecure
        self._token: str | None = None

    def __repr__(self) -> str:
        return f"ChatLogin({self.target.display!r}, user={self.user!r})"

    async def _login(self) -> None:
        exchange = chat_client.login_exchange(self.target, self.user, self._password)
        answer = await http_exchange(self.target, exchange, self._timeout, self._insecure)
        self._token = chat_client.access_token(answer)

    async def ticket(self) -> str:
        if self._token is None:
            await self._login()
        answer = await self._ask_ticket()
        if answer.status == 401:  # the access token expired: log in again, once
            await self._login()
            answer = await self._ask_ticket()
        return chat_client.ticket(answer)

    async def _ask_ticket(self) -> chat_client.HttpAnswer:
        assert self._token is not None
        exchange = chat_client.ticket_exchange(self.target, self._token)
        return await http_exchange(self.target, exchange, self._timeout, self._insecure)

    async def open(self, options: dict[str, object]) -> ClientConnection:
        ticket = await self.ticket()
        return await connect(self.target.ws_url(ticket), **options)  # type: ignore[arg-type]


def _chat_opener(
    args: argparse.Namespace, password: str | None
) -> tuple[Callable[[], Awaitable[ClientConnection]], bool, str]:
    """How to open the chat WebSocket; whether it can be opened again; where it goes (printable)."""
    if args.user:
        target = chat_client.chat_target(args.url)
        assert password is not None
        login = ChatLogin(target, args.user, password, args.timeout, args.insecure)
        options = _connect_options(args, secure=target.secure)
        return (lambda: login.open(options)), True, f"{target.display} as {args.user}"
    options = _connect_options(args)
    reusable = chat_client.url_credential(args.url) == "token"
    return (lambda: connect(args.url, **options)), reusable, _where(args.url)  # type: ignore[arg-type]


async def send_chat_command(args: argparse.Namespace, text: str, password: str) -> None:
    """``rawws send --user``: log in, join, say, wait for the ack, close with 1000."""
    open_ws, _, _ = _chat_opener(args, password)
    room = args.room or DEFAULT_ROOM
    ref = "send"
    ws = await open_ws()
    try:
        async with asyncio.timeout(args.timeout):
            await ws.send(chat_client.join_frame(room))
            await ws.send(chat_client.say_frame(room, text, ref))
            outcome = None
            while outcome is None:
                outcome = chat_client.send_outcome(await ws.recv(), ref)
    finally:
        await ws.close()
    if isinstance(outcome, NotStored):
        raise ClientFailure(EXIT_NOT_STORED, f"message not stored in {room}: {outcome.message} ({outcome.code})")
    _check_close(ws)


async def chat_protocol_command(args: argparse.Namespace, password: str | None) -> None:
    """``rawws chat --user`` (or with a token in the URL): rooms, commands, reconnects."""
    open_ws, reusable, where = _chat_opener(args, password)
    state = ChatState(args.room or DEFAULT_ROOM)  # before connecting: a bad room is a usage error
    backoff = Backoff(
        initial_s=args.reconnect_delay,
        cap_s=max(args.reconnect_max_delay, args.reconnect_delay),
        attempts=args.reconnect_attempts,
    )
    ws = await open_ws()
    compression = "compressed" if ws.compression else "uncompressed"
    print(f"connected to {where} ({compression}); /help lists commands, Ctrl-D or /quit to leave", flush=True)
    end = await chat_session(ws, terminal_for(), state, open_ws if reusable else None, backoff)
    if end.by_user:
        if end.close_timed_out:
            raise ClientFailure(EXIT_TIMEOUT, "timed out: the server did not answer our close frame")
        return
    if end.gave_up is not None:
        raise ClientFailure(
            EXIT_CLOSED_WITH_ERROR,
            f"{_closed_message(end.code, end.reason)}; gave up reconnecting after "
            f"{backoff.attempts} attempt{'s' if backoff.attempts != 1 else ''} ({end.gave_up})",
        )
    if end.code not in OK_CLOSE_CODES:
        raise ClientFailure(EXIT_CLOSED_WITH_ERROR, _closed_message(end.code, end.reason))
    print(_closed_message(end.code, end.reason), file=sys.stderr)


def _check_close(ws: ClientConnection) -> None:
    if ws.close_timed_out:
        raise ClientFailure(EXIT_TIMEOUT, "timed out: the server did not answer our close frame")
    if ws.close_code not in OK_CLOSE_CODES:
        raise ClientFailure(EXIT_CLOSED_WITH_ERROR, _closed_message(ws.close_code, ws.close_reason))


def _closed_message(code: int | None, reason: str) -> str:
    return f"connection closed: {code} {reason}".rstrip()


def _os_reason(error: OSError) -> str:
    """``Connection refused`` rather than asyncio's ``Connect call failed ('127.0.0.1', 1)``."""
    if isinstance(error, ConnectionError) and error.errno:
        return os.strerror(error.errno)
    return error.strerror or str(error) or type(error).__name__


def _where(url: str) -> str:
    """The URL to show: scheme, host, port and path, never the query (it may hold a token)."""
    try:
        return parse_uri(url).display
    except InvalidURI:
        pass
    try:
        return chat_client.chat_target(url).display
    except InvalidURI:
        return url.partition("?")[0]


def run_client_command(coroutine: Awaitable[None], url: str, timeout: float) -> int:
    """Run a client command; every expected failure becomes one line on stderr and its exit code."""
    try:
        try:
            asyncio.run(coroutine)  # type: ignore[arg-type]
        except InvalidURI as exc:
            raise ClientFailure(EXIT_USAGE, str(exc)) from None
        except HandshakeRejected as exc:
            detail = exc.body.decode("utf-8", "replace").strip().splitlines()
            body = f": {detail[0][:200]}" if detail else ""
            status = f"HTTP {exc.status} {exc.reason}".rstrip()
            raise ClientFailure(EXIT_REFUSED, f"upgrade refused: {status}{body}") from None
        except InvalidHandshake as exc:
            raise ClientFailure(EXIT_REFUSED, f"handshake failed: {exc}") from None
        except AuthFailed as exc:
            raise ClientFailure(EXIT_REFUSED, exc.message) from None
        except TimeoutError:
            raise ClientFailure(EXIT_TIMEOUT, f"timed out after {timeout:g}s ({_where(url)})") from None
        except ConnectionClosed as exc:
            raise ClientFailure(EXIT_CLOSED_WITH_ERROR, _closed_message(exc.code, exc.reason)) from None
        except ssl.SSLError as exc:
            raise ClientFailure(EXIT_CANNOT_CONNECT, f"could not connect to {_where(url)}: TLS: {exc}") from None
        except OSError as exc:
            raise ClientFailure(EXIT_CANNOT_CONNECT, f"could not connect to {_where(url)}: {_os_reason(exc)}") from None
        except ValueError as exc:  # e.g. a header the handshake sets itself
            raise ClientFailure(EXIT_USAGE, str(exc)) from None
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except ClientFailure as failure:
        print(f"rawws: {failure.message}", file=sys.stderr)
        return failure.code
    return EXIT_OK


def _client_coroutine(args: argparse.Namespace) -> Awaitable[None]:
    """Check the arguments, read the message and the password (before any connection), pick the command."""
    chat_mode = speaks_chat(args)
    if args.room is not None and not chat_mode:
        raise ClientFailure(EXIT_USAGE, "--room needs --user (or a chat URL with a token)")
    if args.user:
        try:
            chat_client.chat_target(args.url)
        except InvalidURI as exc:
            raise ClientFailure(EXIT_USAGE, str(exc)) from None
    if args.command == "send":
        message = _message_from(args)
        if not chat_mode:
            return send_command(args, message)
        if args.binary or isinstance(message, bytes):
            raise ClientFailure(EXIT_USAGE, "--binary cannot be used with --user: chat messages are text")
        problem = chat_client.check_text(message)
        if problem:
            raise ClientFailure(EXIT_USAGE, problem)
        return send_chat_command(args, message, read_password(args.user))
    if not chat_mode:
        return chat_command(args)
    return chat_protocol_command(args, read_password(args.user) if args.user else None)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Database drivers log statements and rows at DEBUG: password hashes among them.
    for noisy in ("aiosqlite", "sqlalchemy", "asyncpg"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def serve_config(args: argparse.Namespace) -> ServerConfig:
    config = from_env()
    return config.replace(
        host=args.host,
        port=args.port,
        echo=args.echo,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        compression=args.compression,
        max_message_bytes=args.max_message_bytes,
        ping_interval_s=args.ping_interval_s,
        ping_timeout_s=args.ping_timeout_s,
        handshake_timeout_s=args.handshake_timeout_s,
        data_dir=args.data_dir,
        db_url=args.db_url,
        allowed_origins=tuple(args.allowed_origins) if args.allowed_origins else None,
        jwt_public_key=args.jwt_public_key,
        jwt_public_algorithm=args.jwt_public_algorithm,
    )


def serve(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    setup: Callable[[Server], Awaitable[None]],
) -> int:
    """`rawws serve`: build the config from the flags, run until a signal; 1 when it cannot listen."""
    try:
        config = serve_config(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(run_server(config, setup))
    except (OSError, ValueError) as exc:
        logging.getLogger("rawws").error("cannot serve: %s", exc)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    if args.command == "serve":
        return serve(parser, args, setup_app)
    if args.command in ("send", "chat"):
        try:
            coroutine = _client_coroutine(args)
        except ClientFailure as failure:
            print(f"rawws: {failure.message}", file=sys.stderr)
            return failure.code
        except KeyboardInterrupt:  # at the password prompt
            print(file=sys.stderr)
            return EXIT_INTERRUPTED
        return run_client_command(coroutine, args.url, args.timeout)
    parser.error(f"unknown command {args.command}")
    return 2
