"""What `rawws admin` and `rawws api-key` share: commands run on the server's machine, on its
database, where every mistake is one line and exit 1 and nothing goes over the network."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from rawws.cli.exits import EXIT_CANNOT_SERVE, EXIT_OK
from rawws.cli.serve import Origins, explain, say
from rawws.config import ServerConfig
from rawws.errors import RawwsError, UsageError


class OneLineParser(argparse.ArgumentParser):
    """A mistake on the command line is one line and exit 1, as `rawws serve`'s are; ``see``
    names the help to read."""

    def __init__(self, *, see: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.see = see

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message.removeprefix('argument ')} ({self.see})")


def run_on_database(
    config: ServerConfig,
    args: argparse.Namespace,
    work: Callable[[], Coroutine[Any, Any, tuple[list[str], str]]],
) -> int:
    """Run ``work`` (lines for stdout, a note for stderr); a failure is one line and exit 1."""
    try:
        out, note = asyncio.run(work())
    except RawwsError as exc:
        say(explain(exc, config, Origins.of(args)) or str(exc))
        return EXIT_CANNOT_SERVE
    except KeyboardInterrupt:
        say("interrupted by SIGINT")
        return EXIT_CANNOT_SERVE
    for line in out:
        print(line)
    if note:
        print(note, file=sys.stderr)
    return EXIT_OK
