"""`rawws serve`: flags → ServerConfig, logging, and running the server until a signal.

The CLI is the only place that configures logging, so the library never decides where log lines go.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence

from rawws.bus.redis import check_bus_url
from rawws.cli.workers import run_workers
from rawws.config import ServerConfig, from_env
from rawws.errors import RawwsError
from rawws.server.app import token_settings
from rawws.server.server import Server, run_server
from rawws.store import open_store, sqlite_url


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
        workers=args.workers,
        allowed_origins=tuple(args.allowed_origins) if args.allowed_origins else None,
        jwt_public_key=args.jwt_public_key,
        jwt_public_algorithm=args.jwt_public_algorithm,
        jwt_public_namespace=args.jwt_public_namespace,
        refresh_ttl_s=args.refresh_ttl_s,
        websockets_per_user=args.websockets_per_user,
        websockets_per_address=args.websockets_per_address,
        registrations_per_hour_per_address=args.registrations_per_hour_per_address,
        tickets_per_minute_per_user=args.tickets_per_minute_per_user,
        send_buffer_bytes=args.send_buffer_bytes,
    )


async def prepare_shared_files(config: ServerConfig) -> None:
    """What every worker would otherwise create at once: the JWT secret file and the schema."""
    token_settings(config)
    store = await open_store(config.db_url or sqlite_url(config.data_dir))
    await store.close()


def serve(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    setup: Callable[[Server], Awaitable[None]],
    argv: Sequence[str] = (),
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
        if config.workers > 1:
            if config.bus_url is None:
                raise ValueError(f"--workers {config.workers} needs --bus redis://…: without a bus the"
                                 " workers would not see each other's messages")
            asyncio.run(prepare_shared_files(config))  # once, before the workers race for them
            return run_workers(config, argv)
        asyncio.run(run_server(config, setup))
    except (OSError, ValueError, RawwsError) as exc:
        logging.getLogger("rawws").error("cannot serve: %s", exc)
        return 1
    return 0

