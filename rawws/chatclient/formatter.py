"""How `rawws chat` prints server frames: one line each (``12:34 #7 [lobby] ada: hi``). No I/O.

A message shows its id (``#7``) because ``/edit 7 TEXT`` and ``/delete 7`` name
a message by it; an edited message says ``(edited)``, a deleted one is a
tombstone that names who deleted it, never its old text (the server no longer has it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

Frame = dict[str, Any]  # one decoded server frame
TEXT_PREVIEW_CHARS = 40


def preview(text: str) -> str:
    """A say on one short line, for an error that names it without flooding the screen."""
    one_line = " ".join(text.split())
    return (
        one_line
        if len(one_line) <= TEXT_PREVIEW_CHARS
        else one_line[: TEXT_PREVIEW_CHARS - 1] + "…"
    )


def decode(data: str | bytes) -> Frame | str:
    """A server frame as a dict, or why it is not one (to show, and go on: never a crash)."""
    if isinstance(data, bytes):
        return "the server sent a binary frame; ignored"
    try:
        frame = json.loads(data)
    except ValueError:
        return "the server sent a frame that is not JSON; ignored"
    if not isinstance(frame, dict):
        return "the server sent a frame that is not a JSON object; ignored"
    return frame


class Formatter:
    """Screen lines: ``12:34 #7 [lobby] ada: hi``, ``* bob joined lobby``, ``! slow down``.

    ``localtime`` turns a message's ``ts`` (seconds since the epoch) into local
    time; tests pass ``time.gmtime``.
    """

    def __init__(
        self, localtime: Callable[[float], time.struct_time] = time.localtime
    ) -> None:
        self.localtime = localtime

    def _stamp(self, ts: object) -> str:
        if isinstance(ts, (int, float)) and not isinstance(ts, bool):
            try:
                return time.strftime("%H:%M ", self.localtime(ts))
            except (OverflowError, OSError, ValueError):
                return ""
        return ""

    def message(self, frame: Frame) -> str:
        """A message in its current state: ``(edited)`` after an edit, a tombstone once deleted."""
        message_id = frame.get("id")
        tag = f"#{message_id} " if isinstance(message_id, int) else ""
        head = f"{self._stamp(frame.get('ts'))}{tag}[{frame.get('room')}] {frame.get('user')}"
        if frame.get("deleted") is True:
            by = frame.get("deleted_by")
            return f"{head}: (deleted{f' by {by}' if by else ''})"
        edited = " (edited)" if frame.get("edited_at") is not None else ""
        return f"{head}: {frame.get('text')}{edited}"

    def edited(self, frame: Frame) -> str:
        """An ``edited`` event: the message it changed, who changed it, the new text."""
        return (
            f"* {self._stamp(frame.get('ts'))}[{frame.get('room')}] message "
            f"#{frame['message']} edited by {frame.get('user')}: {frame.get('text')}"
        )

    def deleted(self, frame: Frame) -> str:
        """A ``deleted`` event: the tombstone line (the text is gone, on the server too)."""
        return (
            f"* {self._stamp(frame.get('ts'))}[{frame.get('room')}] message "
            f"#{frame['message']} deleted by {frame.get('user')}"
        )

    @staticmethod
    def presence(frame: Frame) -> str:
        return f"* {frame.get('user')} {frame.get('event')} {frame.get('room')}"

    @staticmethod
    def info(text: str) -> str:
        return f"* {text}"

    @staticmethod
    def error(text: str) -> str:
        return f"! {text}"
