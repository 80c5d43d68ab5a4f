"""What a run does with its children beyond ``testkit``'s start/stop: commands, logs, a stop that says so.

Starting, waiting for a port and stopping are ``testkit``'s (shared with the tests,
bench and soak). A run starts every child in a session of its own
(``new_session=True``: stopping it reaches wstest's own children) and stops it with
SIGINT, its clean shutdown.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

import testkit
from conformance.console import say


def substitute(template: list[str], values: Mapping[str, str]) -> list[str]:
    """Replace ``{name}`` placeholders in each argument (plain text replace: other braces stay as they are)."""
    result = []
    for argument in template:
        for name, value in values.items():
            argument = argument.replace("{" + name + "}", value)
        result.append(argument)
    return result


def stop(process: subprocess.Popen[bytes], name: str, grace: float = 10.0) -> None:
    """SIGINT (a clean shutdown) to the child's group, then SIGKILL once ``grace`` seconds have passed."""
    if testkit.stop(process, sig=signal.SIGINT, grace=grace) == -signal.SIGKILL:
        say(f"{name} did not stop within {grace:.0f} s of SIGINT; it was killed")


def tail(log_path: Path, lines: int = 20) -> str:
    """The end of a log, to show next to a failure."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    last = text.splitlines()[-lines:] or ["(empty)"]
    return "\n".join(f"    {line}" for line in last)
