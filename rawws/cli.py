"""Command line: `rawws serve …`. The only module that parses arguments or configures logging."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
from collections.abc import Sequence

from rawws import __version__
from rawws.config import ServerConfig, from_env
from rawws.echo import EchoHandler
from rawws.server import Server, run_server

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
    parser = argparse.ArgumentParser(prog="rawws", description="WebSocket chat service on raw asyncio streams.")
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
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


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
    )


def setup_endpoints(server: Server) -> None:
    if server.config.echo:
        server.add_websocket("/echo", EchoHandler())


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
            asyncio.run(run_server(config, setup_endpoints))
        except OSError as exc:
            logging.getLogger("rawws").error("cannot serve: %s", exc)
            return 1
        return 0
    parser.error(f"unknown command {args.command}")
    return 2
