"""The one line `rawws send` and `rawws chat` print for a failure: what went wrong, and what to type instead.

A newcomer's first mistakes (the chat's web page at ``/`` taken for a WebSocket,
``/ws`` without ``--user``, ``--user`` on ``/echo``, ``http://`` for a raw URL, a
port nothing listens on, ``wss://`` to a server without TLS) each end in one
line naming the fix. The line is decided from what the server answered (status,
``Server`` and ``Content-Type`` headers, the first frame) and from the error the
socket gave, so a server that is not rawws is never described as one; the URL
typed only fills in the command to type instead. Nothing here prints a query
string (it may hold a token): a suggested URL that needs one shows ``?…``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import ssl
from urllib.parse import urlsplit

from rawws.chatclient.reconnect import describe
from rawws.chatclient.target import chat_target, url_credential
from rawws.core.client_handshake import WebSocketURI, parse_uri
from rawws.core.closecodes import CloseCode
from rawws.errors import (
    AuthFailed,
    HandshakeRejected,
    InvalidHandshake,
    InvalidURI,
    NotTheChat,
)

DEFAULT_PORT = (
    8765  # `rawws serve`'s, named when a URL without a port finds nothing on 80
)
LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: what OpenSSL says when the other side answered our ClientHello in plain text
NOT_TLS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "RECORD_LAYER_FAILURE",
        "HTTP_REQUEST",
        "PACKET_LENGTH_TOO_LONG",
    }
)
NO_LOGIN_STATUSES = frozenset({404, 405, 501})  # a server without POST /auth/login


def closed_message(code: int | None, reason: str) -> str:
    """``connection closed: 1009 (message too big): message over 100 bytes``."""
    try:
        name = (
            f" ({CloseCode(code).name.lower().replace('_', ' ')})"
            if code is not None
            else ""
        )
    except ValueError:
        name = ""
    return f"connection closed: {code}{name}" + (f": {reason}" if reason else "")


def where(url: str) -> str:
    """The URL to show: scheme, host, port and path, never the query (it may hold a token)."""
    try:
        return parse_uri(url).display
    except InvalidURI:
        pass
    try:
        return chat_target(url).display
    except InvalidURI:
        return url.partition("?")[0]


# -- what to type instead ------------------------------------------------------------------


def _uri(args: argparse.Namespace) -> WebSocketURI:
    """The WebSocket the command opened (for ``--user``: the chat endpoint, ``/ws`` unless told)."""
    return chat_target(args.url).endpoint if args.user else parse_uri(args.url)


def _server(
    uri: WebSocketURI, scheme: str | None = None, port: int | None = None
) -> str:
    """``ws://127.0.0.1:8765``: the server, as ``--user`` takes it (another scheme or port if given)."""
    host = f"[{uri.host}]" if ":" in uri.host else uri.host
    return f"{scheme or ('wss' if uri.secure else 'ws')}://{host}:{port or uri.port}"


def _path(uri: WebSocketURI) -> str:
    return uri.target.partition("?")[0]


def _page(uri: WebSocketURI, path: str | None = None) -> str:
    """The same place over HTTP, as a browser would open it."""
    return _server(uri, "https" if uri.secure else "http") + (
        _path(uri) if path is None else path
    )


def _command(args: argparse.Namespace, url: str, user: str | None = None) -> str:
    """``rawws send --user NAME ws://host:port hi``: the command typed, with another URL (and user)."""
    words = ["rawws", args.command]
    if user:
        words += ["--user", user]
    words.append(url)
    if args.command == "send":
        words.append(args.message)
    return shlex.join(words)


def _login_hint(args: argparse.Namespace, uri: WebSocketURI) -> str:
    verb = "to chat" if args.command == "chat" else "to say it in the chat"
    return f"{verb}, log in: {_command(args, _server(uri), args.user or 'NAME')}"


# -- the failures ---------------------------------------------------------------------------


def bad_url(exc: InvalidURI, args: argparse.Namespace) -> str:
    """A raw URL that is not ``ws://`` or ``wss://``: the same URL with the scheme it needs."""
    url: str = args.url
    scheme, sep, rest = url.partition("://")
    if args.user or not rest:
        return (
            str(exc)
            if sep or args.user
            else f"{url} has no scheme: {_command(args, 'ws://' + url)}"
        )
    fixed = {"http": "ws", "https": "wss"}.get(scheme.lower())
    if fixed is None:
        return str(exc)
    path, query, _ = rest.partition("?")
    fixed_url = f"{fixed}://{path}" + (
        "?…" if query else ""
    )  # the query, which may hold a token, stays unprinted
    return (
        f"{url.partition('?')[0]} is an HTTP URL; a WebSocket URL starts with ws:// (wss:// for https://): "
        f"{_command(args, fixed_url)}"
    )


def refused(exc: HandshakeRejected, args: argparse.Namespace) -> str:
    """The server answered the upgrade with another status: what that answer means, and what to type."""
    uri = _uri(args)
    is_rawws = (exc.header("server") or "").split("/")[0].strip().lower() == "rawws"
    content_type = (exc.header("content-type") or "").partition(";")[0].strip().lower()
    path = _path(uri)
    if 200 <= exc.status < 300:
        if content_type == "text/html":
            if is_rawws and not args.user:
                return f"{_page(uri)} is the chat's web page, not a WebSocket; {_login_hint(args, uri)}"
            return f"{_page(uri)} is a web page (HTTP {exc.status}), not a WebSocket: check the URL's path"
        kind = content_type or "no content type"
        return (
            f"{_page(uri)} is not a WebSocket (HTTP {exc.status} {exc.reason}, {kind})"
            + (f"; {_login_hint(args, uri)}" if is_rawws and not args.user else "")
        )
    detail = _detail(exc, content_type)
    if is_rawws and exc.status == 401 and not args.user:
        if url_credential(args.url):
            return f"{uri.display} refused the URL's credential ({detail}); {_login_hint(args, uri)}"
        return (
            f"{uri.display} is the chat, which needs a login; {_login_hint(args, uri)}"
        )
    if is_rawws and exc.status == 404:
        if path == "/echo" and not args.user:
            return (
                f"no WebSocket at {uri.display}: this server runs without /echo (start it with rawws serve --echo); "
                f"{_login_hint(args, uri)}"
            )
        return f"no WebSocket at {uri.display} (HTTP 404): the chat is at /ws; {_login_hint(args, uri)}"
    line = f"upgrade refused: HTTP {exc.status} {exc.reason}".rstrip() + (
        f": {detail}" if detail else ""
    )
    location = exc.header("location")
    if 300 <= exc.status < 400 and location:
        line += f" (it points to {location.partition('?')[0]})"
    return line


def _detail(exc: HandshakeRejected, content_type: str) -> str:
    """The refusal's reason: rawws's JSON ``{"error": {"message"}}``, a text body's first line, not HTML."""
    text = exc.body.decode("utf-8", "replace").strip()
    if content_type == "text/html" or text.lower().startswith(("<!doctype", "<html")):
        return "a web page, not a WebSocket"
    try:
        message = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = None
    if isinstance(message, str) and message:
        return message[:200]
    return text.splitlines()[0][:200] if text else ""


def not_the_chat(exc: NotTheChat, args: argparse.Namespace) -> str:
    """A chat client whose WebSocket did not greet it with a ``welcome``: another endpoint, such as /echo."""
    uri = _uri(args)
    how = (
        f"no welcome within {args.timeout:g}s"
        if exc.first is None
        else "its first message was not a welcome"
    )
    line = f"{uri.display} is not the chat ({how})"
    if args.user:
        chat, raw = _command(args, _server(uri), args.user), _command(args, uri.display)
        return f"{line}; --user talks to the chat, at /ws: {chat}, or drop --user for a raw WebSocket: {raw}"
    return f"{line}; a token= or ticket= URL speaks the chat protocol: use the chat's /ws, or --raw for a raw WebSocket"


def no_answer(exc: InvalidHandshake, args: argparse.Namespace) -> str:
    """No HTTP answer to the upgrade: not a WebSocket server, or one that wants TLS."""
    uri = _uri(args)
    if str(exc).startswith("malformed HTTP answer"):
        return f"{uri.display} answered the upgrade with something that is not HTTP: not a WebSocket server"
    if "before answering" not in str(exc):
        return f"handshake failed: {exc}"
    line = f"{uri.display} closed the connection without answering the upgrade: not a WebSocket server"
    if not uri.secure:
        line += f", or one that wants TLS ({_server(uri, 'wss')}{_path(uri)})"
    return line


def cannot_connect(exc: OSError, args: argparse.Namespace) -> str:
    """No TCP or no TLS: nothing listening (and the default port forgotten), or TLS to a plain server."""
    uri = _uri(args)
    start = f"could not connect to {uri.display}"
    if isinstance(exc, ssl.SSLError):
        if exc.reason in NOT_TLS and uri.secure:
            plain = _server(uri, "ws") + ("" if args.user else _path(uri))
            return f"{start}: the server does not speak TLS there (wss://); use ws://: {_command(args, plain, args.user)}"
        return f"{start}: TLS: {exc}"
    if not isinstance(exc, ConnectionRefusedError):
        return f"{start}: {describe(exc)}"
    line = f"{start}: nothing listens on {uri.host}:{uri.port} (connection refused)"
    if _port_given(args.url) or uri.host not in LOOPBACK:
        if uri.host in LOOPBACK:
            echo = " --echo" if _path(uri) == "/echo" and not args.user else ""
            line += f"; start the server first: rawws serve{echo} --port {uri.port}"
        return line
    there = _server(uri, port=DEFAULT_PORT) + ("" if args.user else _path(uri))
    return f"{line}; rawws serve listens on {DEFAULT_PORT} by default: {_command(args, there, args.user)}"


def _port_given(url: str) -> bool:
    try:
        return urlsplit(url).port is not None
    except ValueError:
        return True


def login_refused(exc: AuthFailed, args: argparse.Namespace) -> str:
    """``--user``: a wrong name or password (or no account yet), or a server without rawws's login."""
    uri = _uri(args)
    if exc.status == 401 and exc.message.startswith("login refused"):
        return f"{exc.message}; if {args.user} has no account yet, create one on {_page(uri, '/')}"
    no_login = exc.status in NO_LOGIN_STATUSES or (
        exc.status is None and "the answer has no" in exc.message
    )
    if no_login and exc.message.startswith("login refused"):
        answer = (
            f"HTTP {exc.status}" if exc.status is not None else "no token in its answer"
        )
        return (
            f"{_server(uri)} has no rawws login (POST /auth/login: {answer}), so --user cannot work there; "
            f"without --user, rawws {args.command} talks to any WebSocket URL"
        )
    return exc.message
