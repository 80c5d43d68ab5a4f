"""Where `rawws` log lines go and how they look: text or one JSON object per line, written off the event loop.

The loop only turns a record's message into its final string (the arguments
may be objects that change later) and puts it on a queue; a thread formats
and writes it. Formatting a line and the ``write`` to stderr (which may be a
pipe a slow journald drains) then never stall the loop.

JSON lines carry ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
an ``exception`` when there is one, and the structured fields a log call gives
in ``extra`` -- only the known names in ``FIELDS``, so nothing else a record
carries can reach a line by accident.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import sys
from collections.abc import Callable
from datetime import UTC, datetime

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Structured fields of the WebSocket open/close lines (``extra=`` of those log calls)
FIELDS = ("peer", "path", "user", "code", "duration_s", "compression", "status")
#: Database drivers log statements and rows at DEBUG: password hashes among them.
NOISY_LOGGERS = ("aiosqlite", "sqlalchemy", "asyncpg")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


class _LoopSideHandler(logging.handlers.QueueHandler):
    """Puts records on the queue with as little work as is safe on the caller's thread."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msg = (
            record.getMessage()
        )  # arguments are rendered now: they may change later
        record.args = None
        if record.exc_info:  # a traceback holds frames that will not stay as they are
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return record


def configure_logging(
    level: str, log_format: str = "text", *, queued: bool = False
) -> Callable[[], None]:
    """Configure the root logger (once more replaces the last set-up); returns what flushes and stops it.

    ``queued``: format and write in a thread (the server); client commands write directly.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(getattr(logging, level))
    output = logging.StreamHandler(sys.stderr)
    output.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    if not queued:
        root.addHandler(output)
        return output.flush
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(
        records, output, respect_handler_level=False
    )
    root.addHandler(_LoopSideHandler(records))
    listener.start()

    def stop() -> None:
        listener.stop()  # writes what is still queued, then the thread ends
        output.flush()

    return stop
