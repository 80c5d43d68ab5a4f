"""`rawws serve`: flags → ServerConfig, logging, and running the server until a signal.

Every first mistake is one line on stderr and exit 1, never a traceback. The
layers raise what they found and of which setting (``SettingError``,
``StoreOpenFailed``, ``BusUnavailable``); this module says it of the flag or
``RAWWS_*`` variable the value came from (``Origins``), so the line names what
to change. A stop signal before the server listens is one line too: exit 130
for SIGINT (a Ctrl-C, as the clients answer it: the command did not do its
job), 0 for SIGTERM (a supervisor's stop, done as asked, as after start-up).

The CLI is the only place that configures logging, so the library never decides where log lines go.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from rawws.bus.redis import BusUnavailable, check_bus_url
from rawws.chat.app import open_app_store, token_settings
from rawws.cli.exits import EXIT_CANNOT_SERVE, EXIT_INTERRUPTED, EXIT_OK
from rawws.cli.logs import configure_logging
from rawws.cli.parser import SEE_SERVE_HELP, build_serve_parser
from rawws.cli.workers import run_workers
from rawws.config import (
    ENV_PREFIX,
    ServerConfig,
    check_setting,
    from_env,
    setting_value,
    shown,
    unknown_variables,
    variable_of,
)
from rawws.core.settings import quoted
from rawws.errors import (
    RawwsError,
    SchemaTooNew,
    SettingError,
    StartInterrupted,
    StoreOpenFailed,
    UsageError,
)
from rawws.server.lifecycle import run_server, unless_stopped
from rawws.server.open_files import (
    AcceptErrors,
    log_open_files,
    raise_open_files_limit,
)
from rawws.server.readiness import stop_signals
from rawws.server.server import Server

Setup = Callable[[Server], Awaitable[object]]


@dataclass(frozen=True)
class Origins:
    """Where each setting's value came from, so a message names it: the flag given, else the variable set,
    else the default (said of its flag)."""

    flags: Mapping[str, str]  # setting → its flag ("db_url" → "--db")
    given: frozenset[str]  # settings given as flags
    aliases: Mapping[str, str] | None
    environ: Mapping[str, str]

    @classmethod
    def of(
        cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None
    ) -> Origins:
        flags: dict[str, str] = getattr(args, "flag_names", {})
        given = frozenset(
            name for name in flags if getattr(args, name, None) is not None
        )
        return cls(
            flags,
            given,
            getattr(args, "env_aliases", None),
            os.environ if environ is None else environ,
        )

    def head(self, setting: str, value: str) -> str:
        """``--port 99999``, ``RAWWS_PORT=99999``, or ``--port 8765 (the default)``."""
        if setting in self.given:
            return f"{self.flags[setting]} {quoted(value)}"
        variable = variable_of(setting, self.environ, self.aliases)
        if variable is not None:
            return f"{variable}={quoted(value)}"
        if setting in self.flags:
            return f"{self.flags[setting]} {quoted(value)} (the default)"
        return f"{ENV_PREFIX}{setting.upper()}={quoted(value)} (the default)"

    def say(self, setting: str, value: str, reason: str) -> str:
        return f"{self.head(setting, value)}: {reason}"


def serve_config(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> ServerConfig:
    """The environment's RAWWS_* settings, overridden by the flags given (an unset flag is ``None``).

    A flag's text is converted and checked as its variable's would be (``rawws.config``); a value that cannot
    be used raises ``SettingError`` said of the flag or variable it came from.
    """
    origins = Origins.of(args, environ)
    config = from_env(environ, aliases=origins.aliases)  # a bad variable is named there
    changes: dict[str, object] = {}
    for setting in origins.given:
        if not hasattr(config, setting):
            continue  # not a server setting (--log-level)
        value = getattr(args, setting)
        if isinstance(value, list):  # a repeated flag (--allow-origin): one item each
            value = tuple(value)
        text = shown(value, setting)
        if isinstance(value, str):  # read by the setting's unit, as its variable is
            try:
                value = setting_value(setting, value)
            except ValueError as exc:
                head = origins.head(setting, text)
                reason = f"{exc} ({SEE_SERVE_HELP})"
                raise SettingError(setting, text, reason, head) from None
        problem = check_setting(setting, value)
        if problem is not None:
            raise SettingError(setting, text, problem, origins.head(setting, text))
        changes[setting] = value
    try:
        return config.replace(**changes)
    except SettingError as exc:
        raise exc.named(origins.head(exc.setting, exc.value)) from None


def explain(exc: RawwsError, config: ServerConfig, origins: Origins) -> str | None:
    """The one line for a failed start, said of the setting at fault; ``None`` for an error that names none."""
    database = (
        ("db_url", shown(config.db_url, "db_url"))
        if config.db_url
        else ("data_dir", config.data_dir)
    )
    if isinstance(exc, SettingError):
        return origins.say(exc.setting, exc.value, exc.reason)
    if isinstance(exc, StoreOpenFailed):
        return origins.say(*database, exc.reason)
    if isinstance(exc, SchemaTooNew):
        return origins.say(
            *database, f"{exc}: run the rawws that wrote it, or a newer one"
        )
    if isinstance(exc, BusUnavailable):
        return origins.say("bus_url", exc.url, f"cannot reach the bus: {exc.reason}")
    return None


def say(line: str) -> None:
    """The one line of a failed `rawws serve`, as the clients' are: ``rawws: …`` on stderr."""
    print(f"rawws: {line}", file=sys.stderr, flush=True)


def serve_command(argv: Sequence[str], setup: Setup) -> int:
    """`rawws serve …` from ``argv`` (``["serve", …]``): its flags parsed by its own parser (one-line errors)."""
    try:
        parser = build_serve_parser()
        try:
            args = parser.parse_serve(argv[1:])
        except UsageError as exc:
            say(str(exc))
            return EXIT_CANNOT_SERVE
        return serve(parser, args, setup, argv)
    except (
        KeyboardInterrupt
    ):  # while the settings are read, before any handler of ours is in place
        say(str(StartInterrupted("SIGINT")))
        return EXIT_INTERRUPTED


async def prepare_shared_files(config: ServerConfig) -> None:
    """What every worker would otherwise create at once: the schema and the JWT secret (in ``setup_app``'s order)."""
    with stop_signals() as stopped:
        await unless_stopped(_prepare_shared_files(config), stopped)


async def _prepare_shared_files(config: ServerConfig) -> None:
    store = await open_app_store(config)
    try:
        token_settings(config)
    finally:
        await store.close()


def serve(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    setup: Setup,
    argv: Sequence[str] = (),
) -> int:
    """`rawws serve`: build the config from the flags, run until a signal; 1 (and one line) when it cannot
    listen, open its store or reach its bus; 130 (and one line) when a Ctrl-C came before it listened."""
    del parser  # kept for the callers that pass it (the bench server); errors are one line, not usage
    origins = Origins.of(args)
    try:
        config = serve_config(args)
    except SettingError as exc:
        say(str(exc))
        return EXIT_CANNOT_SERVE
    stop_logging = configure_logging(args.log_level, config.log_format, queued=True)
    for name in unknown_variables(aliases=origins.aliases):
        logging.getLogger("rawws").warning(
            "%s is not a rawws setting and is ignored (see `rawws serve --help`)", name
        )
    listening: list[bool] = []
    problem: str | None = None
    try:
        code = _run(config, setup, argv, lambda: listening.append(True))
    except StartInterrupted as exc:
        problem, code = (
            str(exc),
            EXIT_INTERRUPTED if exc.signal_name == "SIGINT" else EXIT_OK,
        )
    except (
        KeyboardInterrupt
    ):  # a Ctrl-C outside the event loop's handler: before it ran, or a second one
        problem = (
            str(StartInterrupted("SIGINT"))
            if not listening
            else "interrupted by SIGINT while shutting down"
        )
        code = EXIT_INTERRUPTED
    except (OSError, ValueError, RawwsError) as exc:
        said = explain(exc, config, origins) if isinstance(exc, RawwsError) else None
        problem, code = (
            said or f"cannot serve: {exc or type(exc).__name__}",
            EXIT_CANNOT_SERVE,
        )
    finally:
        if (
            problem is not None and config.log_format == "json"
        ):  # the line a log collector parses, like the others
            logging.getLogger("rawws").error(problem)
        stop_logging()
    if problem is not None and config.log_format != "json":
        say(problem)
    return code


def _run(
    config: ServerConfig,
    setup: Setup,
    argv: Sequence[str],
    on_listening: Callable[[], None],
) -> int:
    if config.bus_url is not None:
        check_bus_url(config.bus_url)
    open_files = raise_open_files_limit()  # before any worker starts: they inherit it
    if config.workers > 1:
        if config.bus_url is None:
            raise SettingError(
                "workers",
                str(config.workers),
                "needs --bus redis://…: without a bus the workers "
                "would not see each other's messages",
            )
        asyncio.run(
            prepare_shared_files(config)
        )  # once, before the workers race for them
        return run_workers(config, argv)

    def listening() -> None:  # said once serving, so a first mistake stays one line
        log_open_files(open_files)
        on_listening()

    asyncio.run(_serve(config, setup, listening))
    return EXIT_OK


async def _serve(
    config: ServerConfig, setup: Setup, on_listening: Callable[[], None]
) -> None:
    AcceptErrors(asyncio.get_running_loop()).install()
    await run_server(config, setup, on_listening)
