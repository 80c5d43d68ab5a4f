"""The browser's refresh token in an ``HttpOnly`` cookie: signed in across tabs and restarts,
with nothing a script on the page can read. No I/O: headers in, headers out.

Why a cookie, and why this one:

* The page keeps its short access token in ``sessionStorage`` (one tab); the refresh token
  that renews it is what makes a session outlive the tab. Kept where scripts can read it,
  one injected script could carry it away and sign in as the user for a month. In an
  ``HttpOnly`` cookie no script can read it; the browser sends it only to ``/auth`` (its
  ``Path``), so it never rides on a page load, a ticket or the WebSocket upgrade.
* A cookie rides on requests other sites cause (CSRF). Three locks, each enough alone in a
  current browser: ``SameSite=Strict`` (the browser attaches it to same-site requests only);
  the ``X-Rawws-Session: cookie`` header that every cookie request must carry (a form or
  a link cannot add a header, and another site's script cannot send one without a CORS
  pre-flight this server never grants); and the ``Origin`` check every upgrade already gets.
* ``Secure`` is set when the page was reached over https (here, or behind a trusted TLS
  proxy); a plain-http development server on 127.0.0.1 still works.
* A client opts in (``"session": "cookie"`` at login); API clients keep the token in the
  JSON body as before, and a cookie session's answers never carry the token in JSON.
"""

from __future__ import annotations

from rawws.accounts.upgrade_auth import (
    check_origin,
)
from rawws.core.http import Request
from rawws.errors import HttpError

COOKIE_NAME = "rawws_refresh"
COOKIE_PATH = "/auth"
#: The header a cookie request must carry; its value is this word.
SESSION_HEADER = "X-Rawws-Session"
COOKIE_MODE = "cookie"


def wants_cookie(body: dict[str, object]) -> bool:
    """A login that asks for its refresh token in the cookie (``"session": "cookie"``)."""
    return body.get("session") == COOKIE_MODE


def check_cookie_request(
    request: Request, allowed_origins: frozenset[str], *, tls: bool
) -> None:
    """403 unless the request can only have come from a page of ours (see the module's why)."""
    if (request.header(SESSION_HEADER) or "").strip().lower() != COOKIE_MODE:
        raise HttpError(403, f"a cookie session needs the {SESSION_HEADER} header")
    check_origin(request, allowed_origins, tls=tls)


def cookie_token(request: Request) -> str | None:
    """The refresh token in the request's ``Cookie`` header(s), or None."""
    prefix = COOKIE_NAME + "="
    for key, value in request.headers:
        if key != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            part = part.strip()
            if part.startswith(prefix):
                return part[len(prefix) :] or None
    return None


def _secure(request: Request, tls: bool) -> str:
    return "; Secure" if tls or request.scheme == "https" else ""


def set_cookie(
    request: Request, token: str, max_age_s: int, *, tls: bool
) -> tuple[str, str]:
    """The ``Set-Cookie`` header that stores ``token`` for ``max_age_s`` (the token's own life)."""
    return (
        "Set-Cookie",
        f"{COOKIE_NAME}={token}; Path={COOKIE_PATH}; Max-Age={max_age_s}; HttpOnly;"
        f" SameSite=Strict{_secure(request, tls)}",
    )


def clear_cookie(request: Request, *, tls: bool) -> tuple[str, str]:
    """The ``Set-Cookie`` header that removes the cookie (a logout, a refused refresh)."""
    return (
        "Set-Cookie",
        f"{COOKIE_NAME}=; Path={COOKIE_PATH}; Max-Age=0; HttpOnly;"
        f" SameSite=Strict{_secure(request, tls)}",
    )
