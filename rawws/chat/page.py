"""The browser chat page: `GET /`, `/static/app.js` (and the client library it imports, `/static/rawws.js`), `/static/app.css`, shipped inside the package.

The files are read once, when the routes are added; nothing is fetched
at run time and nothing is built. Every page answer carries the same security
headers: a Content-Security-Policy that allows only this origin (so no inline
script or style, and ``connect-src 'self'`` is what lets the page open its
``ws://``/``wss://`` socket back to us), ``nosniff`` and ``no-referrer``.

Caching: the HTML is ``no-cache`` (always revalidated, so a new release is
seen at once). It names its script and stylesheet with a content hash
(``/static/app.js?v=<hash>``); an asset asked for with its current hash is
immutable for a year, asked for any other way it is ``no-cache``.

The page's script is an ES module that imports the client library
(``import … from "/static/rawws.js"``). That import is rewritten the same way,
to ``/static/rawws.js?v=<hash>``, before app.js's own hash is taken: a new
rawws.js changes app.js's URL too, so a browser holding an immutable old
app.js never pairs it with a new library, nor a new app.js with an old one.
The library is served unchanged, so Node and other pages import the same file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from rawws.core.http import Request, Response, Router

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    (
        "X-Frame-Options",
        "DENY",
    ),  # frame-ancestors says it; this is for browsers that predate it
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
NO_CACHE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"

# (file in rawws/chat/static, URL path, Content-Type); an asset may import only those before it
ASSETS = (
    ("rawws.js", "/static/rawws.js", "text/javascript; charset=utf-8"),
    ("app.js", "/static/app.js", "text/javascript; charset=utf-8"),
    ("app.css", "/static/app.css", "text/css; charset=utf-8"),
)
INDEX = ("index.html", "/", "text/html; charset=utf-8")
APP_SCRIPT = "app.js"
LIBRARY = "/static/rawws.js"  # the client library app.js imports


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    content_type: str
    version: (
        str  # a short content hash: the ``v`` query parameter that makes it cacheable
    )


def read_static(name: str) -> bytes:
    """One file of ``rawws/chat/static`` (from the installed package, wheel or checkout)."""
    return resources.files("rawws.chat").joinpath("static", name).read_bytes()


def _version(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:16]


def _versioned(body: bytes, earlier: dict[str, _Asset]) -> bytes:
    """``body`` with each quoted URL of an ``earlier`` asset given its hash (a module's imports)."""
    text = body.decode("utf-8")
    for path, asset in earlier.items():
        text = text.replace(f'"{path}"', f'"{path}?v={asset.version}"')
    return text.encode("utf-8")


def _page_response(body: bytes, content_type: str, cache_control: str) -> Response:
    return Response(
        200,
        [
            ("Content-Type", content_type),
            ("Cache-Control", cache_control),
            *SECURITY_HEADERS,
        ],
        body,
    )


class Pages:
    """The page's files, read once, and the handlers that serve them."""

    def __init__(self, read: Callable[[str], bytes] = read_static) -> None:
        self.assets: dict[str, _Asset] = {}
        index = read(INDEX[0]).decode("utf-8")
        for name, path, content_type in ASSETS:
            source = read(name)
            if name == APP_SCRIPT and f'"{LIBRARY}"'.encode() not in source:
                raise ValueError(f"{name} does not import {LIBRARY}")
            body = _versioned(source, self.assets)
            self.assets[path] = _Asset(body, content_type, _version(body))
        for path in (f"/static/{APP_SCRIPT}", "/static/app.css"):  # what the page names
            reference = f'"{path}"'
            if reference not in index:
                raise ValueError(f"{INDEX[0]} does not reference {path}")
            index = index.replace(reference, f'"{path}?v={self.assets[path].version}"')
        self.index = index.encode("utf-8")

    def add_routes(self, router: Router) -> None:
        router.add("GET", INDEX[1], self.serve_index)
        for path in self.assets:
            router.add("GET", path, self.serve_asset)

    async def serve_index(self, request: Request) -> Response:
        return _page_response(self.index, INDEX[2], NO_CACHE)

    async def serve_asset(self, request: Request) -> Response:
        asset = self.assets[request.path]
        cache = IMMUTABLE if request.query_param("v") == asset.version else NO_CACHE
        return _page_response(asset.body, asset.content_type, cache)


def add_page_routes(router: Router) -> Pages:
    """Serve the chat page at ``/`` on ``router``; the files are read now, once."""
    pages = Pages()
    pages.add_routes(router)
    return pages
