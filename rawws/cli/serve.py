"""`rawws serve`: flags → ServerConfig, logging, and running the server until a signal.

The CLI is the only place that configures logging, so the library never decides where log lines go.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable

from rawws.bus.redis import check_bus_url
from rawws.config import ServerConfig, from_env
from rawws.errors import RawwsError
from rawws.server.server import Server, run_server


def configure_logging(level: str) -> None:
    """Log lines to stderr; database drivers are held at WARNING because at DEBUG they log rows."""
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Database drivers log statements and rows at DEBUG: password hashes among them.
    for noisy in ("aiosqlite", "sqlalchemy", "asyncpg"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def serve_config(args: argparse.Namespace) -> ServerConfig:
    """The environment's RAWWS_* settings, overridden by the flags given (an unset flag is ``None``)."""
    config = from_env()
    return config.replace(
        host=args.host,
        port=args.port,
        echo=args.echo,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        compression=args.compression,
        compression_window_bits=args.compression_window_bits,
        max_message_bytes=args.max_message_bytes,
        ping_interval_s=args.ping_interval_s,
        ping_timeout_s=args.ping_timeout_s,
        handshake_timeout_s=args.handshake_timeout_s,
        data_dir=args.data_dir,
        db_url=args.db_url,
        bus_url=args.bus_url,
        allowed_origins=tuple(args.allowed_origins) if args.allowed_origins else None,
        jwt_public_key=args.jwt_public_key,
        jwt_public_algorithm=args.jwt_public_algorithm,
    )


def serve(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    setup: Callable[[Server], Awaitable[None]],
) -> int:
    """`rawws serve`: build the config from the flags, run until a signal; 1 when it cannot listen,
    open its store or reach its bus."""
    try:
        config = serve_config(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        if config.bus_url is not None:
            check_bus_url(config.bus_url)
        asyncio.run(run_server(config, setup))
    except (OSError, ValueError, RawwsError) as exc:
        logging.getLogger("rawws").error("cannot serve: %s", exc)
        return 1
    return 0

