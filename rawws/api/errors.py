"""What the client of ``/api/v1`` raises: the server's JSON error answer, or no answer at all.

The two are kept apart because only the second may be retried blindly: an
``ApiError`` is the server's decision (a 409 stays a 409), while ``ApiUnreachable``
means the call may or may not have been carried out, which is exactly the case
an ``idempotency_key`` exists for.
"""

from __future__ import annotations

from rawws.errors import RawwsError


class ApiError(RawwsError):
    """The server answered ``{"error": {"status", "code", "message"}}`` (or a non-JSON error status).

    ``retry_after`` is the ``Retry-After`` header in seconds when the answer had one
    (429 ``rate_limited``, 503 ``unavailable``), else None.
    """

    def __init__(
        self, status: int, code: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"ApiError({self.status!r}, {self.code!r}, {self.message!r})"


class ApiUnreachable(RawwsError):
    """No whole answer came back: refused, reset, closed mid-answer, timed out, or not HTTP.

    The call may have been carried out on the server; only a call made with an
    ``idempotency_key`` can safely be sent again.
    """
