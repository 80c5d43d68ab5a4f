"""`rawws serve`: flags → ServerConfig, logging, and running the server until a signal.

The CLI is the only place that configures logging, so the library never decides where log lines go.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from rawws.bus.redis import check_bus_url
from rawws.cli.logs import configure_logging
from rawws.cli.workers import run_workers
from rawws.config import ServerConfig, from_env, unknown_variables
from rawws.errors import RawwsError
from rawws.server.app import token_settings
from rawws.server.server import Server, run_server
from rawws.store import open_store, sqlite_url


def serve_config(args: argparse.Namespace) -> ServerConfig:
    """The environment's RAWWS_* settings, overridden by the flags given (an unset flag is ``None``)."""
    config = from_env(aliases=getattr(args, "env_aliases", None))
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
        forwarded_allow_ips=_comma_list(args.forwarded_allow_ips),
        metrics_port=args.metrics_port,
        drain_delay_s=args.drain_delay_s,
        log_format=args.log_format,
        metrics_host=args.metrics_host,
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


def _comma_list(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(item.strip() for item in text.split(",") if item.strip())


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
    stop_logging = configure_logging(args.log_level, config.log_format, queued=True)
    for name in unknown_variables(aliases=getattr(args, "env_aliases", None)):
        logging.getLogger("rawws").warning("%s is not a rawws setting and is ignored (see `rawws serve --help`)", name)
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
    finally:
        stop_logging()
    return 0

