"""Command line: `rawws serve|send|chat …`. The only module that parses arguments or configures logging."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import ssl
import sys
from collections.abc import Awaitable, Sequence

from rawws import __version__
from rawws.client import OK_CLOSE_CODES, ClientConnection, ConnectionClosed, connect
from rawws.client_handshake import HandshakeRejected, InvalidHandshake, InvalidURI, parse_uri
from rawws.config import DEFAULT_MAX_MESSAGE_BYTES, ServerConfig, from_env
from rawws.app import setup_app
from rawws.server import run_server
from rawws.terminal import chat, terminal_for

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
EXIT_INTERRUPTED = 130  # Ctrl-C before the connection was open

CLIENT_EXIT_CODES = f"""\
exit codes:
  {EXIT_OK}  done; the connection closed normally
  {EXIT_USAGE}  usage error (bad arguments or URL)
  {EXIT_CANNOT_CONNECT}  could not connect (name resolution, TCP, TLS)
  {EXIT_REFUSED}  the server refused the upgrade (HTTP status shown) or answered it wrongly
  {EXIT_TIMEOUT}  timed out (connecting, the handshake, or the closing handshake)
  {EXIT_CLOSED_WITH_ERROR}  the connection closed with an error code (shown), or was lost
"""
DEFAULT_CLIENT_TIMEOUT_S = 10.0


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
        description="Connect to URL, send MESSAGE, close with 1000.",
        epilog=CLIENT_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    send.add_argument("url", metavar="URL", help="ws:// or wss:// URL")
    send.add_argument(
        "message",
        metavar="MESSAGE",
        help="the message; '-' reads it from stdin (one trailing newline is dropped from text)",
    )
    send.add_argument(
        "--binary", action="store_true", help="send a binary message (MESSAGE as UTF-8, or stdin's bytes)"
    )
    _add_connection_options(send)

    chat = commands.add_parser(
        "chat",
        help="interactive client: type lines, see messages",
        description="Connect to URL; each typed line is sent as a text message and each message received "
        "is printed. Ctrl-D, Ctrl-C or /quit close with 1000.",
        epilog=CLIENT_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chat.add_argument("url", metavar="URL", help="ws:// or wss:// URL")
    _add_connection_options(chat)


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


def _connect_options(args: argparse.Namespace) -> dict[str, object]:
    return {
        "subprotocols": args.subprotocols,
        "additional_headers": args.headers,
        "compression": "deflate" if args.compression else None,
        "max_size": args.max_message_bytes or DEFAULT_MAX_MESSAGE_BYTES,
        "open_timeout": args.timeout,
        "close_timeout": args.timeout,
        "insecure": args.insecure and args.url.lower().startswith("wss:"),
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
    return parse_uri(url).display


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    if args.command == "serve":
        try:
            config = serve_config(args)
        except ValueError as exc:
            parser.error(str(exc))
        try:
            asyncio.run(run_server(config, setup_app))
        except (OSError, ValueError) as exc:
            logging.getLogger("rawws").error("cannot serve: %s", exc)
            return 1
        return 0
    if args.command == "send":
        try:
            message = _message_from(args)
        except ClientFailure as failure:
            print(f"rawws: {failure.message}", file=sys.stderr)
            return failure.code
        return run_client_command(send_command(args, message), args.url, args.timeout)
    if args.command == "chat":
        return run_client_command(chat_command(args), args.url, args.timeout)
    parser.error(f"unknown command {args.command}")
    return 2
