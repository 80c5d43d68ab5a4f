"""`rawws chat`'s terminal: a line editor and the terminals it runs on, so messages arrive while you type.

Three parts, so each can be replaced or tested alone:

* ``MessageFormat``: how a typed line becomes a message and a message becomes
  text on screen. ``RawText`` sends each line as a text message and shows each
  message as it came; the chat protocol brings its own rules (``ChatState``).
* ``LineEditor``: a small line editor with no I/O (keys in, actions and the
  redrawn prompt line out), so incoming messages can be printed above the line
  being typed and the line redrawn after them (``\\r\\x1b[K``).
* Terminals: ``RawTerminal`` puts a tty in raw mode (stdlib ``termios``) and
  reads it through the event loop; ``LineTerminal`` reads plain lines when
  stdin is not a tty (a pipe, a file).

What runs a chat on them (``chat()``, ``chat_session()``) is ``rawws.chatclient.session``.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import sys
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from rawws.chatclient.visible import ESCAPED, visible

PROMPT = "> "
INCOMING = "< "
QUIT_COMMAND = "/quit"
BINARY_PREVIEW_BYTES = 32
READ_SIZE = 1024

# -- what the application does with lines and messages --------------------------------


class MessageFormat(Protocol):
    """The hook a chat protocol fills: typed line → message, message → screen text."""

    def outgoing(self, line: str) -> str | bytes | None:
        """The message to send for a typed line, or ``None`` to send nothing."""
        ...

    def incoming(self, message: str | bytes) -> str | None:
        """The text to show for a received message, or ``None`` to show nothing."""
        ...


class RawText:
    """No protocol yet: every line is a text message, every message is shown as it came."""

    def outgoing(self, line: str) -> str | bytes | None:
        return line or None  # Enter on an empty line sends nothing

    def incoming(self, message: str | bytes) -> str | None:
        if isinstance(message, str):
            return INCOMING + message
        preview = message[:BINARY_PREVIEW_BYTES].hex(" ")
        more = " …" if len(message) > BINARY_PREVIEW_BYTES else ""
        return f"{INCOMING}[binary, {len(message)} bytes] {preview}{more}".rstrip()


# -- the line editor (no I/O) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Submit:
    """Enter was pressed on this line."""

    line: str


@dataclass(frozen=True, slots=True)
class EndOfInput:
    """Ctrl-D on an empty line, or stdin ended."""


@dataclass(frozen=True, slots=True)
class Interrupt:
    """Ctrl-C (or SIGINT)."""


InputAction = Submit | EndOfInput | Interrupt

_CTRL_A, _CTRL_B, _CTRL_C, _CTRL_D, _CTRL_E, _CTRL_F = (
    "\x01",
    "\x02",
    "\x03",
    "\x04",
    "\x05",
    "\x06",
)
_CTRL_H, _CTRL_K, _CTRL_L, _CTRL_U, _CTRL_W, _ESC, _DEL = (
    "\x08",
    "\x0b",
    "\x0c",
    "\x15",
    "\x17",
    "\x1b",
    "\x7f",
)
_ESCAPE_KEYS = {
    "[C": "right", "OC": "right", "[D": "left", "OD": "left",
    "[H": "home", "OH": "home", "[1~": "home", "[7~": "home",
    "[F": "end", "OF": "end", "[4~": "end", "[8~": "end",
    "[3~": "delete",
}  # fmt: skip


class LineEditor:
    """Edits one line from raw key bytes: insert, Backspace, Delete, ←/→, Home/End, Ctrl-A/E/K/U/W."""

    def __init__(self, prompt: str = PROMPT) -> None:
        self.prompt = prompt
        self.chars: list[str] = []
        self.cursor = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._escape: str | None = None  # an escape sequence being read
        self._after_cr = False  # "\r\n" (a paste, some terminals) is one Enter

    @property
    def line(self) -> str:
        return "".join(self.chars)

    def feed(self, data: bytes) -> list[InputAction]:
        """Apply key bytes; the actions they complete (a submitted line, end of input, interrupt)."""
        actions: list[InputAction] = []
        for char in self._decoder.decode(data):
            action = self._key(char)
            if action is not None:
                actions.append(action)
        return actions

    def _key(self, char: str) -> InputAction | None:
        after_cr, self._after_cr = self._after_cr, char == "\r"
        if char == "\n" and after_cr:
            return None
        if self._escape is not None:
            self._escape_key(char)
            return None
        if char in "\r\n":
            line = self.line
            self.chars, self.cursor = [], 0
            return Submit(line)
        if char == _CTRL_C:
            return Interrupt()
        if char == _CTRL_D:
            if not self.chars:
                return EndOfInput()
            self._delete()
        elif char in (_DEL, _CTRL_H):
            if self.cursor > 0:
                self.cursor -= 1
                del self.chars[self.cursor]
        elif char == _ESC:
            self._escape = ""
        elif char == _CTRL_A:
            self.cursor = 0
        elif char == _CTRL_E:
            self.cursor = len(self.chars)
        elif char == _CTRL_B:
            self.cursor = max(0, self.cursor - 1)
        elif char == _CTRL_F:
            self.cursor = min(len(self.chars), self.cursor + 1)
        elif char == _CTRL_K:
            del self.chars[self.cursor :]
        elif char == _CTRL_U:
            del self.chars[: self.cursor]
            self.cursor = 0
        elif char == _CTRL_W:
            self._delete_word()
        elif char == "\t":
            self._insert(" ")
        elif unicodedata.category(char)[0] != "C" and ord(char) not in ESCAPED:
            self._insert(char)
        return None  # other control keys (Ctrl-L, ...) only redraw

    def _escape_key(self, char: str) -> None:
        sequence = (self._escape or "") + char
        if sequence in _ESCAPE_KEYS:
            self._escape = None
            key = _ESCAPE_KEYS[sequence]
            if key == "left":
                self.cursor = max(0, self.cursor - 1)
            elif key == "right":
                self.cursor = min(len(self.chars), self.cursor + 1)
            elif key == "home":
                self.cursor = 0
            elif key == "end":
                self.cursor = len(self.chars)
            else:
                self._delete()
        elif sequence in ("[", "O") or (
            sequence[0] == "[" and not ("\x40" <= char <= "\x7e")
        ):
            self._escape = sequence  # a CSI sequence goes on until its final byte
        else:
            self._escape = None  # an unknown key: ignored

    def _insert(self, char: str) -> None:
        self.chars.insert(self.cursor, char)
        self.cursor += 1

    def _delete(self) -> None:
        if self.cursor < len(self.chars):
            del self.chars[self.cursor]

    def _delete_word(self) -> None:
        start = self.cursor
        while start > 0 and self.chars[start - 1] == " ":
            start -= 1
        while start > 0 and self.chars[start - 1] != " ":
            start -= 1
        del self.chars[start : self.cursor]
        self.cursor = start

    def render(self) -> str:
        """Escape codes that redraw the prompt line with the cursor in its place."""
        after_cursor = display_width(self.chars[self.cursor :])
        back = f"\x1b[{after_cursor}D" if after_cursor else ""
        return "\r\x1b[K" + self.prompt + visible(self.line) + back


def display_width(chars: list[str]) -> int:
    """Columns the characters take: wide (CJK) ones take two, combining marks none."""
    width = 0
    for char in chars:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


# -- terminals (I/O) -------------------------------------------------------------------------


class Terminal(Protocol):
    """What a chat needs of a terminal, so a test or another front end can stand in for the tty."""

    def start(self, on_input: Callable[[InputAction], None]) -> None: ...

    def show(self, text: str) -> None: ...

    def stop(self) -> None: ...


class RawTerminal:
    """A tty in raw mode: keys are read as they come, and messages print above the prompt line."""

    def __init__(self, input_fd: int, output: TextIO, prompt: str = PROMPT) -> None:
        self.input_fd = input_fd
        self.output = output
        self.editor = LineEditor(prompt)
        self._saved: list[Any] | None = None  # the tty's attributes, restored by stop()
        self._on_input: Callable[[InputAction], None] | None = None

    def start(self, on_input: Callable[[InputAction], None]) -> None:
        import termios  # POSIX only, and only when a tty is used

        self._on_input = on_input
        self._saved = termios.tcgetattr(self.input_fd)
        raw = termios.tcgetattr(self.input_fd)
        raw[0] &= ~(
            termios.ICRNL | termios.INLCR | termios.IGNCR | termios.IXON
        )  # iflag: keys as typed
        raw[3] &= ~(
            termios.ECHO | termios.ICANON | termios.ISIG | termios.IEXTEN
        )  # lflag: no echo, no line
        raw[6][termios.VMIN] = 1
        raw[6][termios.VTIME] = 0
        termios.tcsetattr(
            self.input_fd, termios.TCSADRAIN, raw
        )  # output processing stays: "\n" → "\r\n"
        asyncio.get_running_loop().add_reader(self.input_fd, self._readable)
        self._write(self.editor.render())

    def _readable(self) -> None:
        try:
            data = os.read(self.input_fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # the terminal went away
        if not data:
            self._emit([EndOfInput()])
            return
        actions = self.editor.feed(data)
        for action in actions:
            if isinstance(action, Submit):
                # Leave the typed line on screen, start a fresh prompt below it.
                self._write(
                    "\r\x1b[K" + self.editor.prompt + visible(action.line) + "\n"
                )
        self._write(self.editor.render())
        self._emit(actions)

    def _emit(self, actions: list[InputAction]) -> None:
        if self._on_input is not None:
            for action in actions:
                self._on_input(action)

    def show(self, text: str) -> None:
        self._write("\r\x1b[K" + visible(text) + "\n" + self.editor.render())

    def stop(self) -> None:
        import termios

        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.input_fd)
        self._write("\r\x1b[K")
        if self._saved is not None:
            termios.tcsetattr(self.input_fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def _write(self, text: str) -> None:
        self.output.write(text)
        self.output.flush()


class LineTerminal:
    """Stdin that is not a tty: whole lines, read by a daemon thread (regular files cannot be polled)."""

    def __init__(self, input_stream: TextIO, output: TextIO) -> None:
        self.input_stream = input_stream
        self.output = output

    def start(self, on_input: Callable[[InputAction], None]) -> None:
        loop = asyncio.get_running_loop()

        def read_lines() -> None:
            for line in self.input_stream:
                loop.call_soon_threadsafe(on_input, Submit(line.rstrip("\r\n")))
            loop.call_soon_threadsafe(on_input, EndOfInput())

        threading.Thread(
            target=read_lines, name="rawws-chat-stdin", daemon=True
        ).start()

    def show(self, text: str) -> None:
        self.output.write(visible(text) + "\n")
        self.output.flush()

    def stop(self) -> None:
        pass


def terminal_for(
    input_stream: TextIO = sys.stdin, output: TextIO = sys.stdout
) -> Terminal:
    """A raw-mode line editor on a tty, plain line reading otherwise."""
    if input_stream.isatty() and output.isatty():
        return RawTerminal(input_stream.fileno(), output)
    return LineTerminal(input_stream, output)
