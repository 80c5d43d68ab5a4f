"""`rawws api-key`: create, list and revoke the server API's keys, on the server's machine only.

Like `rawws admin` it opens the database `rawws serve` uses (the same flags and ``RAWWS_*``
variables: ``--data-dir``, ``--db``) and nothing over the network. ``create`` prints the
key once, alone on stdout, so ``KEY=$(rawws api-key create …)`` keeps it and nothing else;
the note about it goes to stderr. The database keeps only the SHA-256 of its secret, so
``list`` can never show a key again. A revocation reaches every node within about a
second (each node's key cache lasts a second, ``rawws.apps.key_book``).

Every failure (a bad flag, a bad name, a taken name, a database that will not open) is
one line on stderr and exit 1, as `rawws admin`'s are; never a traceback.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from rawws.apps.keys import (
    DEFAULT_BURST,
    DEFAULT_PER_S,
    SCOPES,
    ApiKey,
    key_settings_problem,
)
from rawws.chat.app import open_app_store
from rawws.cli.database_commands import OneLineParser, run_on_database
from rawws.cli.exits import EXIT_CANNOT_SERVE
from rawws.cli.flags import add_serve_flags
from rawws.cli.serve import say, serve_config
from rawws.config import ServerConfig, shown
from rawws.errors import RawwsError, UsageError

SEE_HELP = "see `rawws api-key --help`"
ACTIONS = ("create", "list", "revoke")

DESCRIPTION = f"""\
The server API's keys, on the server's machine: the database is the one `rawws serve`
uses, named by the same flags or RAWWS_* variables (--data-dir, --db).

  create NAME --scope S [--scope S]… [--room ROOM|PREFIX*]… [--per-second N] [--burst N]
                 a new key named NAME (a user's name rules; the sender of what it
                 publishes); prints the key once, on stdout (scopes: {", ".join(SCOPES)};
                 no --room: every room)
  list           every key: name, id, scopes, rooms, rate, state (never the key)
  revoke NAME    the key stops working on every node within about a second
"""


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="rawws api-key",
        see=SEE_HELP,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=ACTIONS, help="what to do")
    parser.add_argument("name", nargs="?", help="the key's name (not for list)")
    parser.add_argument(
        "--scope", action="append", default=[], choices=SCOPES, help="(create) a scope"
    )
    parser.add_argument(
        "--room", action="append", default=[], help="(create) a room, or a prefix*"
    )
    parser.add_argument(
        "--per-second", type=float, default=DEFAULT_PER_S, help="(create) rate"
    )
    parser.add_argument(
        "--burst", type=int, default=DEFAULT_BURST, help="(create) burst"
    )
    add_serve_flags(parser)
    return parser


def api_key_command(argv: Sequence[str]) -> int:
    """`rawws api-key …` from ``argv`` (``["api-key", …]``): one line and exit 1 for any failure."""
    parser = build_parser()
    try:
        args, extras = parser.parse_known_args(argv[1:])
        if extras:
            raise UsageError(f"{extras[0]}: not understood ({SEE_HELP})")
        if (args.action == "list") != (args.name is None):
            needs = "takes no NAME" if args.action == "list" else "needs a NAME"
            raise UsageError(f"{args.action} {needs} ({SEE_HELP})")
        if args.action == "create":
            problem = key_settings_problem(
                args.name, args.scope, args.room, args.per_second, args.burst
            )
            if problem is not None:
                raise UsageError(f"{problem} ({SEE_HELP})")
        elif args.scope or args.room:
            raise UsageError(f"--scope and --room are for create ({SEE_HELP})")
        config = serve_config(args)
    except (UsageError, RawwsError) as exc:
        say(str(exc))
        return EXIT_CANNOT_SERVE
    return run_on_database(config, args, lambda: run(config, args))


class NoSuchKey(RawwsError):
    """No live key has the name given."""


async def run(config: ServerConfig, args: argparse.Namespace) -> tuple[list[str], str]:
    """(the lines for stdout, a note for stderr) of ``args.action`` in ``config``'s database."""
    store = await open_app_store(config)
    try:
        if args.action == "create":
            shown_key, key = await store.create_api_key(
                args.name,
                frozenset(args.scope),
                tuple(dict.fromkeys(args.room)),
                args.per_second,
                args.burst,
                time.time(),
            )
            return [shown_key], (
                f"rawws: key {key.name!r} (id {key.id}) created; it is shown this once: "
                "keep it secret"
            )
        if args.action == "list":
            return [describe(key) for key in await store.list_api_keys()], ""
        if not await store.revoke_api_key(args.name, time.time()):
            where = shown(config.db_url, "db_url") if config.db_url else config.data_dir
            raise NoSuchKey(
                f"no live key named {args.name!r} in the database of {where}"
            )
        return [f"{args.name} revoked: refused on every node within about a second"], ""
    finally:
        await store.close()


def describe(key: ApiKey) -> str:
    """One line of ``list``: never the key (the database does not have it)."""
    state = "live" if key.revoked_at is None else "revoked"
    rooms = ",".join(key.rooms) or "*"
    return (
        f"{key.name}\t{key.id}\t{','.join(sorted(key.scopes))}\trooms={rooms}"
        f"\t{key.per_s:g}/s burst {key.burst}\t{state}"
    )
