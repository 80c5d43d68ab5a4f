"""`rawws admin`: stop, start and erase accounts, grant server admin, on the server's machine only.

It opens the database `rawws serve` uses, read from the same flags and ``RAWWS_*``
variables (``--data-dir``, ``--db``; any of `rawws serve`'s flags is accepted, so
the serve command line can be reused as it is), and writes there. Nothing here is
reachable over the network: who may run it is who may open the database.

Every running node hears of a disable or enable without being told: each polls the
store for new ``not_before`` stamps every half second (``accounts.stops``), so the
user's connections close with 1008 on every node within a second, bus or no bus.
With ``--bus`` it is also published there (sealed with the cluster's key, from the
JWT secret), so the nodes act on it at once; a bus that does not take it is said
in a line, and the command still succeeds (the poll carries it).

`erase USER` erases the account as the user could (``rawws.store.erasure``), each message
deleted by "admin". The command has no feed: the ``deleted`` events are stored in each
room's sequence but not published, so live members get them when the room's next entry
shows their node the gap (it reads the events from the store, in order), or at their next
reconnect with ``since``; ``history`` shows the tombstones at once. The stamp closes the
user's connections as a disable does.

Every failure (a bad flag, a database that will not open, an unknown user) is one
line and exit 1, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from rawws.bus.redis import BusUnavailable, publish_once
from rawws.bus.seal import bus_key
from rawws.chat.app import SECRET_FILE, open_app_store
from rawws.chat.codec import Stopped, encode_event
from rawws.cli.database_commands import OneLineParser, run_on_database
from rawws.cli.exits import EXIT_CANNOT_SERVE
from rawws.cli.flags import add_serve_flags
from rawws.cli.serve import say, serve_config
from rawws.config import ServerConfig, shown
from rawws.errors import RawwsError, UsageError
from rawws.store import SqlStore
from rawws.store.base import Stamp

SEE_ADMIN_HELP = "see `rawws admin --help`"
#: Who an admin's erasure says deleted the messages (``deleted_by``).
ADMIN_ERASER = "admin"
ACTIONS = ("disable", "enable", "grant", "revoke", "erase", "list")

ADMIN_DESCRIPTION = """\
Accounts, on the server's machine: the database is the one `rawws serve` uses, named
by the same flags or RAWWS_* variables (--data-dir, --db).

  disable USER   refuse the user's logins; revoke every refresh token; close every
                 connection of theirs (1008) on every node within about a second
  enable USER    let the user sign in again (with the password they had)
  grant USER     make the user a server admin (only ever granted here)
  revoke USER    take server admin away
  erase USER     erase the account: every message of theirs deleted (by "admin"),
                 refresh tokens and memberships removed, connections closed; the
                 name stays taken for 30 days (the quarantine), then is free again
  list           the admins and the disabled users
"""


def build_admin_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="rawws admin",
        see=SEE_ADMIN_HELP,
        description=ADMIN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=ACTIONS, help="what to do")
    parser.add_argument("user", nargs="?", help="the user's name (not for list)")
    add_serve_flags(parser)
    return parser


def admin_command(argv: Sequence[str]) -> int:
    """`rawws admin …` from ``argv`` (``["admin", …]``): one line and exit 1 for any failure."""
    parser = build_admin_parser()
    try:
        args, extras = parser.parse_known_args(argv[1:])
        if extras:
            raise UsageError(f"{extras[0]}: not understood ({SEE_ADMIN_HELP})")
        if (args.action == "list") != (args.user is None):
            needs = "takes no user" if args.action == "list" else "needs a USER"
            raise UsageError(f"{args.action} {needs} ({SEE_ADMIN_HELP})")
        config = serve_config(args)
    except (UsageError, RawwsError) as exc:
        say(str(exc))
        return EXIT_CANNOT_SERVE

    async def work() -> tuple[list[str], str]:
        return await run_admin(config, args.action, args.user), ""

    return run_on_database(config, args, work)


class NoSuchUser(RawwsError):
    """The name given is no user of this database."""


async def run_admin(config: ServerConfig, action: str, user: str | None) -> list[str]:
    """Do ``action`` in ``config``'s database; the lines to print (``NoSuchUser``, ``StoreOpenFailed``…)."""
    store = await open_app_store(config)
    try:
        return await _act(store, config, action, user)
    finally:
        await store.close()


async def _act(
    store: SqlStore, config: ServerConfig, action: str, user: str | None
) -> list[str]:
    if action == "list":
        accounts = await store.flagged_accounts()
        return [
            f"{account.username}\t{'admin' if account.admin else ''}"
            f"{' ' if account.admin and account.disabled else ''}"
            f"{'disabled' if account.disabled else ''}"
            for account in accounts
        ]
    assert user is not None
    stamp: Stamp | None = None
    redacted = 0
    if action in ("disable", "enable"):
        stamp = await store.set_disabled(user, action == "disable", time.time())
        found = stamp is not None
    elif action == "erase":  # the admin's decision: no role is checked (``erase_user``)
        stamp, events = await store.erase_user(user, ADMIN_ERASER, time.time())
        found, redacted = stamp is not None, len(events)
    else:
        found = await store.set_admin(user, action == "grant")
    if not found:
        where = shown(config.db_url, "db_url") if config.db_url else config.data_dir
        raise NoSuchUser(f"no user {user!r} in the database of {where}")
    done = {
        "disable": "disabled: logins refused, refresh tokens revoked, connections "
        "close on every node within a second",
        "enable": "enabled: may sign in again",
        "grant": "is a server admin",
        "revoke": "is no longer a server admin",
        "erase": f"erased: {redacted} message(s) deleted, connections close on every "
        "node within a second; the name is taken for 30 days",
    }[action]
    lines = [f"{user} {done}"]
    if stamp is not None and config.bus_url is not None:
        problem = await announce(config, stamp)
        if problem is not None:
            lines.append(
                f"(not told over the bus: {problem}; the nodes read it from the database)"
            )
    return lines


def cluster_secret(config: ServerConfig) -> bytes | None:
    """The JWT secret the nodes seal the bus with: ``--jwt-secret``, else the data directory's file
    (read, never made: a command that makes a secret would split the cluster); ``None`` if neither."""
    if config.jwt_secret is not None:
        return config.jwt_secret.encode("utf-8")
    try:
        return bytes.fromhex((Path(config.data_dir) / SECRET_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


async def announce(config: ServerConfig, stamp: Stamp) -> str | None:
    """Publish ``stamp`` on the bus, as a node would; what went wrong, or ``None``."""
    assert config.bus_url is not None
    secret = cluster_secret(config)
    if secret is None:
        return f"no JWT secret to seal it with (--jwt-secret, or {SECRET_FILE} in --data-dir)"
    sender = f"admin:{socket.gethostname()}:{os.getpid()}"
    event = Stopped(sender, stamp.user_key, stamp.not_before, stamp.disabled)
    try:
        await publish_once(
            config.bus_url, bus_key(secret), encode_event(event), config.bus_timeout_s
        )
    except BusUnavailable as exc:
        return exc.reason
    return None
