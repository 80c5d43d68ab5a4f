"""Command line: ``python -m conformance server|client [options]`` (run from the repository root)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from conformance.cases import DEFAULT_CASES, BadCaseSelection
from conformance.client_run import (
    DEFAULT_CLIENT_COMMAND,
    ClientRunOptions,
    run_client_suite,
)
from conformance.console import say
from conformance.server_run import (
    DEFAULT_SERVER_COMMAND,
    ServerRunOptions,
    run_server_suite,
)
from conformance.session import EXIT_SETUP_ERROR
from conformance.wstest import WstestUnavailable
from testkit import StartupFailed

HERE = Path(__file__).resolve().parent
DEFAULT_TIMEOUT = 40 * 60  # seconds; a full server run takes about a quarter of that


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.side == "server":
            return run_server_suite(
                ServerRunOptions(
                    selection=args.cases,
                    jobs=args.jobs,
                    server_command=shlex.split(args.server_cmd)
                    if args.server_cmd
                    else DEFAULT_SERVER_COMMAND,
                    timeout=args.timeout,
                    summary_path=args.summary or HERE / "server-summary.md",
                    keep_reports=args.keep_reports,
                )
            )
        return run_client_suite(
            ClientRunOptions(
                selection=args.cases,
                jobs=args.jobs,
                client_command=shlex.split(args.client_cmd)
                if args.client_cmd
                else DEFAULT_CLIENT_COMMAND,
                timeout=args.timeout,
                summary_path=args.summary or HERE / "client-summary.md",
                keep_reports=args.keep_reports,
            )
        )
    except (WstestUnavailable, BadCaseSelection, StartupFailed) as error:
        say(f"cannot run the suite: {error}")
        return EXIT_SETUP_ERROR


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m conformance",
        description="Run the Autobahn TestSuite (wstest 0.8.2) against rawws and summarize the results. "
        "Exit code: 0 all cases OK/INFORMATIONAL, 1 conformance failure, 2 could not run.",
    )
    sides = parser.add_subparsers(dest="side", required=True)

    server = sides.add_parser(
        "server", help="test the rawws server (wstest fuzzingclient)"
    )
    server.add_argument(
        "--server-cmd",
        metavar="CMD",
        help="server under test, as one shell-quoted string; {port} is replaced by the port "
        f"(default: {shlex.join(DEFAULT_SERVER_COMMAND)})",
    )

    client = sides.add_parser(
        "client", help="test the rawws client (wstest fuzzingserver)"
    )
    client.add_argument(
        "--client-cmd",
        metavar="CMD",
        help="client driver, as one shell-quoted string; {url} and {agent} are replaced "
        f"(default: {shlex.join(DEFAULT_CLIENT_COMMAND)})",
    )

    for side, jobs_help in (
        (server, "wstest fuzzing clients that share the cases and the one server"),
        (client, "wstest fuzzing servers that share the cases, one client driver each"),
    ):
        side.add_argument(
            "--jobs", type=_positive_int, default=2, help=f"{jobs_help} (default: 2)"
        )
        side.add_argument(
            "--cases",
            default=DEFAULT_CASES,
            help="sections or cases, comma separated: 1-13, 5, 1.*, 6.4.1 (default: 1-13)",
        )
        side.add_argument(
            "--timeout",
            type=float,
            default=DEFAULT_TIMEOUT,
            help=f"seconds before the run is stopped and failed (default: {DEFAULT_TIMEOUT})",
        )
        side.add_argument(
            "--summary",
            type=Path,
            help="where to write the Markdown summary "
            "(default: conformance/server-summary.md or conformance/client-summary.md)",
        )
        side.add_argument(
            "--keep-reports",
            action="store_true",
            help="keep the work dir with the raw reports even when the run passes",
        )
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


if __name__ == "__main__":
    sys.exit(main())
