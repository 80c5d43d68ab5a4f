"""Passwords out of URLs before a URL reaches a log line or an error message.

Works on text that is not a valid URL too (a mistyped one is exactly what an error message quotes):
everything between ``://`` and the last ``@`` is the user information, and what follows its first
``:`` is hidden. A password holding ``/``, ``@`` or ``:`` is still hidden whole.
"""

from __future__ import annotations

HIDDEN = "***"


def redact_url(url: str) -> str:
    """``scheme://user:***@host…`` for ``scheme://user:secret@host…``; any other text unchanged."""
    scheme, separator, rest = url.partition("://")
    if not separator or "@" not in rest:
        return url
    userinfo, at, location = rest.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if not colon:
        return url
    return f"{scheme}://{user}:{HIDDEN}{at}{location}"
