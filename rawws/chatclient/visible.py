"""Other people's text made safe to print on a terminal: every character that would act instead of show is escaped.

A chat message, a user or room name, a close reason or an error the server
echoes is text someone else chose. Printed as it came, a ``\\n`` starts a
line that looks like another user's message, ``\\x1b[…`` drives the terminal
(colours, cursor moves, the window title), and a bidi control (U+202E, the
right-to-left override) turns the rest of the line around. ``visible`` is the
one function every place that prints remote text goes through (the chat's
terminals, ``rawws send``'s replies on a tty, the ``-v`` trace, the one-line
failures), so a new field cannot be forgotten.

Escaped, as Python writes them: ``\\n`` ``\\r`` ``\\t``; other C0 controls,
DEL and C1 controls as ``\\xNN``; the bidi controls (U+061C, U+200E, U+200F,
U+202A–U+202E, U+2066–U+2069), the line and paragraph separators (U+2028,
U+2029, which some terminals break lines at) and lone surrogates (JSON's
``"\\ud800"`` decodes to one, and a UTF-8 terminal cannot be written one) as
``\\uNNNN``. Everything else, printable text in any script, is unchanged; a
backslash is left as it is (so the escapes are readable, not reversible).
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

#: Code points that never reach the terminal as they are.
ESCAPED: frozenset[int] = frozenset(
    [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
    + [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
    + [0x2028, 0x2029, *range(0xD800, 0xE000)]
)


def _escape(code: int) -> str:
    char = chr(code)
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_TABLE = {code: _escape(code) for code in ESCAPED}


def visible(text: str) -> str:
    """``text`` with every control, bidi control, line separator and lone surrogate shown as an escape."""
    return text.translate(_TABLE)
