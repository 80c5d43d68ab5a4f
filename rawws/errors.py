"""Every exception rawws raises on purpose, in one tree, each carrying what its answer needs.

::

    RawwsError
    ├── HttpError                  an HTTP answer instead of what was asked: status, message, headers
    │   └── AuthError              401 with a WWW-Authenticate challenge (never holds the token)
    ├── HeaderSyntaxError          a header value against its grammar (also a ValueError)
    ├── ChatError                  a chat frame refused: the `error` frame's code, message and ref
    ├── ConnectionClosed           sending on, or reading from, a WebSocket that is over: code, reason
    │   ├── ConnectionClosedOK     closed with 1000, 1001 or no status (1005)
    │   └── ConnectionClosedError  closed with an error code, or lost (1006)
    ├── InvalidURI                 not a ws:// or wss:// URL we can connect to (also a ValueError)
    ├── InvalidHandshake           the server's answer is not a WebSocket we can run
    │   └── HandshakeRejected      the upgrade was answered with another status: status, headers, body
    ├── UsernameTaken              registration of a name that exists (case-insensitively)
    ├── SchemaTooNew               the database was written by a newer rawws
    ├── StoreUnavailable           the database did not answer: not done, may be tried again
    ├── StoreOpenFailed            at start: the database refused, is missing, is silent, or lacks a privilege
    ├── SettingError               a setting's value cannot be used: which setting, its value, why (also a ValueError)
    ├── UsageError                 a command line that does not parse: names the flag (also a ValueError)
    ├── StartInterrupted           SIGINT or SIGTERM came before the server listened: which signal
    ├── AuthFailed                 the client's login or ticket request was refused: status, message
    ├── NotTheChat                 a chat client's WebSocket did not open with the chat's welcome
    └── ClientFailure              a client command ends with this exit code and one line on stderr

Errors that carry their wire answer (h11's ``error_status_hint``, wsproto's
``ParseFailed``): the code that refuses raises, and the edge writes the answer
the error holds, so the decision and its answer stay in one place.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "AuthFailed",
    "ClientFailure",
    "ChatError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "HandshakeRejected",
    "HeaderSyntaxError",
    "HttpError",
    "InvalidHandshake",
    "InvalidURI",
    "NotTheChat",
    "RawwsError",
    "SchemaTooNew",
    "SettingError",
    "StartInterrupted",
    "StoreOpenFailed",
    "StoreUnavailable",
    "UsageError",
    "UsernameTaken",
]


class RawwsError(Exception):
    """Base of every error rawws raises on purpose."""


class HttpError(RawwsError):
    """A request that earns an HTTP error answer instead of what it asked for."""

    def __init__(
        self,
        status: int,
        message: str,
        headers: list[tuple[str, str]] | None = None,
        *,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []
        #: A word a program can branch on (``account_disabled``), sent beside the message.
        self.code = code


class AuthError(HttpError):
    """401 with a ``WWW-Authenticate`` challenge (RFC 6750 §3). The message never holds the token."""

    def __init__(self, message: str) -> None:
        super().__init__(
            401, message, [("WWW-Authenticate", 'Bearer error="invalid_token"')]
        )


class HeaderSyntaxError(RawwsError, ValueError):
    """A header value that does not follow the grammar it must follow."""


class ChatError(RawwsError):
    """A client frame we refuse; the reply is an ``error`` frame and the connection stays open."""

    def __init__(self, code: str, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref


class ConnectionClosed(RawwsError):
    """The WebSocket is closed (or closing): ``code`` and ``reason`` say how it ended, once known."""

    def __init__(self, code: int | None = None, reason: str = "") -> None:
        what = " ".join(str(part) for part in (code, reason) if part not in (None, ""))
        super().__init__(f"connection closed: {what}" if what else "connection closed")
        self.code = code
        self.reason = reason


class ConnectionClosedOK(ConnectionClosed):
    """Closed normally: 1000, 1001, or a close frame without a code (1005)."""


class ConnectionClosedError(ConnectionClosed):
    """Closed with an error code, or lost without a closing handshake (1006)."""


class InvalidURI(RawwsError, ValueError):
    """Not a ``ws://`` or ``wss://`` URL we can connect to."""


class InvalidHandshake(RawwsError):
    """The opening handshake failed: the server's answer is not a WebSocket we can run."""


class HandshakeRejected(InvalidHandshake):
    """The server answered the upgrade with an HTTP status other than 101 (e.g. 401, 403, 404)."""

    def __init__(
        self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        super().__init__(
            f"server rejected the WebSocket upgrade: HTTP {status} {reason}".rstrip()
        )
        self.status = status
        self.reason = reason
        self.headers = headers
        #: The answer's body, cut at ``MAX_REJECTION_BODY_BYTES`` (``rawws.core.client_handshake``).
        self.body = body

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or ``None``."""
        wanted = name.lower()
        return next(
            (value for key, value in self.headers if key.lower() == wanted), None
        )


class UsernameTaken(RawwsError):
    """Registration of a name that exists already (case-insensitively)."""


class SchemaTooNew(RawwsError):
    """The database's schema version is newer than this rawws knows: refuse rather than guess."""


class StoreUnavailable(RawwsError):
    """The store did not answer (an outage): the operation was not done and may be tried again."""


class StoreOpenFailed(RawwsError):
    """The store could not be opened at start: ``url`` (its password redacted) and ``reason``, which says what
    to do. Raised where the driver's error is understood (``rawws.store.opening``), so no caller sees a driver's."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"database {url}: {reason}")
        self.url = url
        self.reason = reason


class SettingError(RawwsError, ValueError):
    """A setting whose value cannot be used: ``setting`` (the ``ServerConfig`` field), ``value`` as it may be
    shown (passwords redacted), ``reason`` (what is wrong and what to do).

    The code that finds the problem knows the field, not where its value came from; `rawws serve` names
    the flag or ``RAWWS_*`` variable that set it (``head``), so one line says what to change.
    """

    def __init__(
        self, setting: str, value: str, reason: str, head: str | None = None
    ) -> None:
        self.setting = setting
        self.value = value
        self.reason = reason
        self.head = head or f"{setting} {value}"
        super().__init__(f"{self.head}: {reason}")

    def named(self, head: str) -> SettingError:
        """The same problem, said of ``head`` (``--port 99999``, ``RAWWS_PORT=99999``)."""
        return SettingError(self.setting, self.value, self.reason, head)


class UsageError(RawwsError, ValueError):
    """`rawws serve`'s command line does not parse (an unknown flag, a missing value): the message names the flag."""


class StartInterrupted(RawwsError):
    """A stop signal came while the server was starting: the start was undone, nothing was served."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(
            f"interrupted by {signal_name} while starting; nothing was served"
        )
        self.signal_name = signal_name


class AuthFailed(RawwsError):
    """``/auth/login`` or ``/auth/ticket`` said no (``status``), or answered something unreadable (``None``)."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    @property
    def retryable(self) -> bool:
        """Too many logins (429) or a server error may pass; a wrong password does not."""
        return self.status is not None and (self.status == 429 or self.status >= 500)


class NotTheChat(RawwsError):
    """The chat opens every connection with a ``welcome``; this one opened with ``first`` instead
    (``None``: nothing within the timeout), so it is another WebSocket, such as ``/echo``."""

    def __init__(self, first: str | bytes | None) -> None:
        super().__init__("the WebSocket did not open with the chat's welcome")
        self.first = first


class ClientFailure(RawwsError):
    """A client command ends with this exit code and one line on stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
