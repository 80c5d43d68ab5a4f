"""What `rawws send` prints of the messages it receives, and the ``-v`` frame trace of `send` and `chat`.

Replies go to stdout, one per line, for a script to read: text as it came
(made ``visible`` only when stdout is a terminal, where an escape sequence,
a newline or a bidi control would act), binary as hex, which ``xxd -r -p`` turns back into
the bytes. The trace goes to stderr, one line per frame as it is sent or
received, in the spirit of ``websocat -v``: ``> text 5 B: hello``,
``< close 1000 (normal closure)``. A reader that goes away (``| head -1``)
ends the printing, not the command.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TextIO

from rawws.chatclient.visible import visible
from rawws.core.closecodes import CloseCode
from rawws.core.trace import TracedFrame

PREVIEW_CHARS = 60  # of a text frame in the trace
PREVIEW_BYTES = 16  # of a binary or control frame in the trace, as hex


class Replies:
    """Prints each message received on ``stream`` (stdout), until the reader of that stream goes away."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.terminal = self.stream.isatty()
        self.gone = False

    def show(self, message: str | bytes) -> None:
        if self.gone:
            return
        if isinstance(message, bytes):
            line = message.hex()
        else:
            line = visible(message) if self.terminal else message
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except BrokenPipeError:
            self.gone = True  # `| head -1`: the rest is not wanted; nor must Python complain at exit
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())


def trace_line(frame: TracedFrame) -> str:
    """One frame on one line: direction, kind, size of the data, a preview (made ``visible``)."""
    arrow = ">" if frame.sent else "<"
    if frame.kind == "close":
        if frame.code is None:
            return f"{arrow} close (no code)"
        try:
            name = f" ({CloseCode(frame.code).name.lower().replace('_', ' ')})"
        except ValueError:
            name = ""
        reason = f": {visible(frame.reason)}" if frame.reason else ""
        return f"{arrow} close {frame.code}{name}{reason}"
    data = frame.data
    size = len(data.encode("utf-8")) if isinstance(data, str) else len(data)
    fragment = f" ({frame.fragment} fragment)" if frame.fragment else ""
    if isinstance(data, str):
        text = visible(data)
        preview = (
            text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"
        )
    else:
        preview = data[:PREVIEW_BYTES].hex(" ") + (
            " …" if len(data) > PREVIEW_BYTES else ""
        )
    return f"{arrow} {frame.kind} {size} B{fragment}" + (
        f": {preview}" if preview else ""
    )


def trace_to_stderr(frame: TracedFrame) -> None:
    print(trace_line(frame), file=sys.stderr, flush=True)
