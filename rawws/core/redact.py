"""Secrets out of URLs before a URL reaches a log line or an error message.

A URL carries a secret in two places, and both are hidden:

* the user information's password (``scheme://user:secret@host``);
* a query parameter whose name says it is one (``?password=``, ``?passwd=``, ``?pass=``,
  ``?sslpassword=``, ``?token=``, ``?secret=``, ``?api_key=``…): for ``unix://`` Redis URLs
  ``?password=`` is the only way to give a password, and asyncpg reads ``?password=`` and
  ``?sslpassword=`` too.

Works on text that is not a valid URL too (a mistyped one is exactly what an error message quotes),
and errs towards hiding more: everything between ``://`` and the last ``@`` is the user information,
and what follows its first ``:`` is hidden, so a password holding ``/``, ``@``, ``:`` or ``?`` is still
hidden whole. A secret parameter's value runs to the next ``&``, ``;`` or ``?`` that starts another
``name=`` pair, so a raw ``&`` inside a password (``?password=a&b``) does not leave its tail shown.
Parameter names are compared case-insensitively after percent-decoding, as the drivers read them.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

HIDDEN = "***"

#: A query parameter whose name holds one of these (case-insensitively) is a secret.
SECRET_WORDS = ("pass", "pwd", "secret", "token", "auth", "key", "credential")

_SEPARATORS = re.compile(r"([&;?])")


def is_secret_name(name: str) -> bool:
    """``name`` (a query parameter's, as written in the URL) names a secret."""
    decoded = unquote_plus(name).casefold()
    return any(word in decoded for word in SECRET_WORDS)


def redact_url(url: str) -> str:
    """``url`` with every secret shown as ``***``: ``scheme://user:***@host/…?password=***``.

    Text with nothing to hide is returned unchanged.
    """
    scheme, separator, rest = url.partition("://")
    if separator:
        return scheme + separator + _hide_query(_hide_password(rest))
    return _hide_query(url)


def _hide_password(rest: str) -> str:
    userinfo, at, location = rest.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if not at or not colon:
        return rest
    return f"{user}:{HIDDEN}{at}{location}"


def _hide_query(text: str) -> str:
    head, question, query = text.partition("?")
    if not question:
        return text
    pieces = _SEPARATORS.split(query)  # [pair, separator, pair, separator, …, pair]
    hiding = False
    shown: list[str] = []
    for separator, piece in zip(["", *pieces[1::2]], pieces[0::2], strict=True):
        name, equals, _value = piece.partition("=")
        if equals:
            hiding = is_secret_name(name)
            shown.append(separator + (f"{name}={HIDDEN}" if hiding else piece))
        elif not hiding:
            shown.append(separator + piece)
        # else: a piece without "=" after a secret is the secret's tail: hidden with it
    return head + question + "".join(shown)
