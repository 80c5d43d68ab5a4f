"""Command line: `rawws serve|admin|api-key|send|chat …`. The only package that parses arguments or configures logging.

  parser.py           the commands, the clients' flags, `rawws serve`'s own parser
  flags.py            `rawws serve`'s flags and --help, built from ServerConfig's fields
  admin.py            `rawws admin`: disable, enable, grant and revoke admin, list (the database, never the network)
  api_keys.py         `rawws api-key`: create, list and revoke the server API's keys (the database, likewise)
  serve.py            `rawws serve`: flags → ServerConfig, logging, run until a signal; every failure one line
  workers.py          `rawws serve --workers N`: N processes on one port (SO_REUSEPORT)
  client_commands.py  `rawws send` and `rawws chat`: the commands and their failures
  mistakes.py         the one line each failure prints: what is wrong, and what to type instead
  output.py           what `rawws send` prints of its replies, and the -v frame trace
  exits.py            the exit codes (the client commands', and `rawws serve`'s)

This module only dispatches; the names others use (the bench server, the tests) are re-exported here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from rawws.errors import ClientFailure, StartInterrupted

try:  # loading the command line takes a moment (SQLAlchemy, redis, cryptography): a Ctrl-C then is one line too
    from rawws.apps.setup import setup_service
    from rawws.cli.admin import admin_command
    from rawws.cli.api_keys import api_key_command
    from rawws.cli.client_commands import client_coroutine, run_client_command
    from rawws.cli.exits import (
        EXIT_CANNOT_CONNECT,
        EXIT_CLOSED_WITH_ERROR,
        EXIT_INTERRUPTED,
        EXIT_NOT_STORED,
        EXIT_OK,
        EXIT_REFUSED,
        EXIT_TIMEOUT,
        EXIT_USAGE,
    )
    from rawws.cli.logs import configure_logging
    from rawws.cli.parser import build_parser, parse_header, parse_size
    from rawws.cli.serve import serve, serve_command, serve_config
except KeyboardInterrupt:
    _SERVING = sys.argv[1:2] == ["serve"]
    print(
        f"rawws: {StartInterrupted('SIGINT') if _SERVING else 'interrupted by SIGINT while starting'}",
        file=sys.stderr,
        flush=True,
    )
    # 130 is EXIT_INTERRUPTED, which was being imported. Exited at once (nothing was started):
    # through the interpreter's own exit, an interrupt that landed in some imports ended the
    # process by SIGINT (-2) even though it was handled here (5 runs in 30 on 3.11).
    os._exit(130)

__all__ = [
    "EXIT_CANNOT_CONNECT",
    "EXIT_CLOSED_WITH_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_STORED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "build_parser",
    "configure_logging",
    "main",
    "parse_header",
    "parse_size",
    "serve",
    "serve_config",
]


def main(argv: Sequence[str] | None = None) -> int:
    """`rawws …`: parse, configure logging once, run the command; the exit code is returned, not raised."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if (
        argv[:1] == ["serve"]
    ):  # its own parser (a bad flag is one line); configures logging once its settings are read
        return serve_command(argv, setup_service)
    if argv[:1] == ["admin"]:  # its own parser too: every mistake is one line
        return admin_command(argv)
    if argv[:1] == ["api-key"]:  # likewise
        return api_key_command(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    if args.command in ("send", "chat"):
        try:
            coroutine = client_coroutine(args)
        except ClientFailure as failure:
            print(f"rawws: {failure.message}", file=sys.stderr)
            return failure.code
        except KeyboardInterrupt:  # at the password prompt
            print(file=sys.stderr)
            return EXIT_INTERRUPTED
        return run_client_command(coroutine, args)
    parser.error(f"unknown command {args.command}")
