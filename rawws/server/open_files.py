"""The open-files limit, raised at start: every connection holds one file descriptor.

A process cannot hold more connections than its ``RLIMIT_NOFILE`` allows
(less the few files it has open itself). Systems commonly start a service
with a low *soft* limit (1,024) under a much higher *hard* one, and any
process may raise its own soft limit up to the hard one without privileges,
so ``rawws serve`` does that before it listens and logs what it has. Past
the limit the kernel refuses ``accept`` (``EMFILE``): asyncio's accept loop
logs it and tries again a second later, so open connections keep working
and new ones wait in the listen backlog. That loop logs a traceback for
every attempt (its whole backlog's worth each second), so ``AcceptErrors``
makes it one line a few seconds apart with a count. Raising the *hard* limit is the
operator's (systemd's ``LimitNOFILE=``, ``ulimit -Hn``, a container's
``--ulimit nofile=``): see "Open files" in ``docs/deploying.md``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("rawws.server")

# Linux refuses a soft limit above fs.nr_open even when the hard one is "unlimited".
_NR_OPEN = Path("/proc/sys/fs/nr_open")
_NR_OPEN_DEFAULT = 1_048_576


@dataclass(frozen=True)
class OpenFiles:
    """The soft limit before and after raising it, and the hard limit above it."""

    before: int
    soft: int
    hard: int


def _ceiling(hard: int) -> int:
    """The highest soft limit this process may ask for under ``hard``."""
    if hard != resource.RLIM_INFINITY:
        return hard
    try:
        return int(_NR_OPEN.read_text())
    except (OSError, ValueError):
        return _NR_OPEN_DEFAULT


def raise_open_files_limit() -> OpenFiles:
    """Raise the soft open-files limit to the hard one; what it was and is. Never raises: a system
    that refuses keeps the limit it had, and the log says which."""
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = before
    wanted = _ceiling(hard)
    if before != resource.RLIM_INFINITY and before < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:
            logger.warning(
                "could not raise the open-files limit from %d to %d: %s",
                before,
                wanted,
                exc,
            )
    return OpenFiles(before=before, soft=soft, hard=hard)


def log_open_files(limits: OpenFiles) -> None:
    """One line at start: how many connections this process can hold at most."""
    raised = f", raised from {limits.before}" if limits.soft != limits.before else ""
    logger.info(
        "open files: at most %d per process%s (hard limit %s): each connection holds one",
        limits.soft,
        raised,
        "unlimited" if limits.hard == resource.RLIM_INFINITY else limits.hard,
    )


#: What asyncio's accept loop says when the kernel refuses ``accept`` for want of files or memory.
ACCEPT_OUT_OF_RESOURCES = "socket.accept() out of system resource"
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


@dataclass
class AcceptErrors:
    """The loop's exception handler: a refused ``accept`` is one warning per ``every_s`` with how many
    there were, not a traceback each; everything else goes to the loop's default handler."""

    loop: asyncio.AbstractEventLoop
    every_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    refused: int = 0
    _said_at: float | None = field(default=None, repr=False)

    def install(self) -> None:
        self.loop.set_exception_handler(self.handle)

    def handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if context.get("message") != ACCEPT_OUT_OF_RESOURCES or not (
            isinstance(exc, OSError) and exc.errno in _RESOURCE_ERRNOS
        ):
            loop.default_exception_handler(context)
            return
        self.refused += 1
        now = self.clock()
        if self._said_at is not None and now - self._said_at < self.every_s:
            return
        self._said_at = now
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        logger.warning(
            "cannot accept connections: %s (open-files limit %d; %d refusals so far):"
            " new connections wait in the listen backlog (docs/deploying.md, 'Open files')",
            exc.strerror or exc,
            soft,
            self.refused,
        )
