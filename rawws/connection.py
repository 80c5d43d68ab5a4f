"""A sans-I/O WebSocket connection on top of wsproto: bytes in, events out; messages in, bytes out.

What this layer adds to wsproto:

* whole messages: fragments are joined here (their size is bounded by
  ``extensions.MessageSizeLimit`` before they are buffered);
* automatic pongs and the closing handshake's answer, produced in the order
  the frames arrived, so an echo of a message is never sent after our close;
* a failure (protocol error, bad UTF-8, too big) becomes our close frame with
  the code wsproto chose and a request to drop TCP: wsproto reports it as a
  ``CloseConnection`` while its state is still OPEN and then parses nothing more;
* keepalive bookkeeping: which ping is outstanding and since when.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterator

from wsproto import ConnectionType
from wsproto.connection import Connection as _WsprotoConnection
from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, Pong, TextMessage
from wsproto.extensions import Extension

from rawws.errors import RawwsError
from rawws.events import Closed, Event, MessageReceived, PongReceived

NORMAL_CLOSURE = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
NO_STATUS_RECEIVED = 1005
ABNORMAL_CLOSURE = 1006
INVALID_PAYLOAD = 1007
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013


class State(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"  # we sent a close frame and wait for the peer's
    CLOSED = "closed"


class ConnectionClosed(RawwsError):
    """Raised when sending on a WebSocket that is closing or closed."""


class WebSocket:
    """One WebSocket connection's protocol state, for either role, with no I/O."""

    __slots__ = (
        "_proto",
        "_outgoing",
        "_fragments",
        "_pending_ping",
        "state",
        "close_code",
        "close_reason",
        "close_transport",
    )

    def __init__(
        self,
        *,
        client: bool,
        extensions: list[Extension] | None = None,
    ) -> None:
        role = ConnectionType.CLIENT if client else ConnectionType.SERVER
        self._proto = _WsprotoConnection(role, extensions)
        self._outgoing: list[bytes] = []
        self._fragments: list[str | bytes] = []
        self._pending_ping: bytes | None = None
        self.state = State.OPEN
        self.close_code: int | None = None
        self.close_reason = ""
        #: True once the edge should drop TCP (after writing what is pending).
        self.close_transport = False

    # -- bytes in, events out -------------------------------------------------

    def receive_data(self, data: bytes) -> Iterator[Event]:
        """Feed bytes from the network; yields events lazily, queueing replies in order.

        Call ``data_to_send()`` after each event so replies keep their place
        relative to what the application sends in response to that event.
        """
        if self.state is State.CLOSED:
            return
        self._proto.receive_data(data)
        yield from self._events()

    def receive_eof(self) -> Iterator[Event]:
        """The peer closed TCP. Without a close frame first, that is 1006."""
        if self.state is State.CLOSED:
            return
        self._proto.receive_data(None)
        self.state = State.CLOSED
        self.close_transport = True
        self.close_code = self.close_code if self.close_code is not None else ABNORMAL_CLOSURE
        yield Closed(ABNORMAL_CLOSURE, "connection lost", by_peer=True)

    def _events(self) -> Iterator[Event]:
        for event in self._proto.events():
            if isinstance(event, Message):
                message = self._reassemble(event)
                if message is not None and self.state is State.OPEN:
                    yield MessageReceived(message)
            elif isinstance(event, Ping):
                if self._proto.state is ConnectionState.OPEN:  # after our close, a ping gets no pong
                    self._outgoing.append(self._proto.send(event.response()))
            elif isinstance(event, Pong):
                if event.payload == self._pending_ping:
                    self._pending_ping = None
                yield PongReceived(bytes(event.payload))
            elif isinstance(event, CloseConnection):
                yield self._on_close(event)
                return

    def _reassemble(self, event: Message) -> str | bytes | None:
        if event.message_finished and not self._fragments:
            data = event.data
            return data if isinstance(event, TextMessage) else bytes(data)
        self._fragments.append(event.data)
        if not event.message_finished:
            return None
        parts, self._fragments = self._fragments, []
        if isinstance(event, BytesMessage):
            return b"".join(parts)  # type: ignore[arg-type]
        return "".join(parts)  # type: ignore[arg-type]

    def _on_close(self, event: CloseConnection) -> Closed:
        wsproto_state = self._proto.state
        self.close_transport = True
        self._fragments = []
        if wsproto_state is ConnectionState.OPEN:
            # wsproto failed to parse: fail the connection with its code (RFC 6455 §7.1.7).
            self._outgoing.append(self._proto.send(CloseConnection(event.code, _short(event.reason))))
            self.state = State.CLOSED
            self.close_code, self.close_reason = event.code, event.reason
            return Closed(event.code, event.reason, by_peer=False)
        if wsproto_state is ConnectionState.REMOTE_CLOSING:
            # The peer started the closing handshake: echo its code (§5.5.1).
            self._outgoing.append(self._proto.send(event.response()))
            self.state = State.CLOSED
            self.close_code, self.close_reason = event.code, event.reason
            return Closed(event.code, event.reason, by_peer=True)
        # We started it and this is the answer. RFC 6455 §7.1.5: the connection's
        # close code is the one in the close frame received (usually ours, echoed;
        # not when the peer's own close crossed ours).
        self.state = State.CLOSED
        self.close_code, self.close_reason = event.code, event.reason or ""
        return Closed(event.code, self.close_reason, by_peer=False)

    # -- messages in, bytes out ----------------------------------------------

    def data_to_send(self) -> bytes:
        """Everything queued by ``receive_data`` (pongs, close answers) since the last call."""
        if not self._outgoing:
            return b""
        data = b"".join(self._outgoing)
        self._outgoing.clear()
        return data

    def send(self, message: str | bytes) -> bytes:
        """The frame bytes of one whole message."""
        if self.state is not State.OPEN:
            raise ConnectionClosed(f"cannot send: connection is {self.state.value}")
        return bytes(self._proto.send(Message(data=message)))

    def ping(self, payload: bytes | None = None) -> bytes:
        """A ping frame; its payload is remembered so the matching pong clears it."""
        if self.state is not State.OPEN:
            raise ConnectionClosed(f"cannot ping: connection is {self.state.value}")
        payload = os.urandom(4) if payload is None else payload
        self._pending_ping = payload
        return bytes(self._proto.send(Ping(payload=payload)))

    @property
    def awaiting_pong(self) -> bool:
        return self._pending_ping is not None

    def close(self, code: int = NORMAL_CLOSURE, reason: str = "") -> bytes:
        """Start the closing handshake; the peer's close frame finishes it."""
        if self.state is not State.OPEN:
            return b""
        self.state = State.CLOSING
        self.close_code, self.close_reason = code, reason
        return bytes(self._proto.send(CloseConnection(code, _short(reason) or None)))

    def abort(self, code: int = ABNORMAL_CLOSURE, reason: str = "") -> None:
        """Give up on the connection without a handshake (timeouts, dead peers)."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.state = State.CLOSED
        self.close_transport = True


def _short(reason: str) -> str:
    """Close reasons go on the wire; keep them within a control frame (≤ 123 bytes)."""
    encoded = reason.encode("utf-8")[:123]
    return encoded.decode("utf-8", errors="ignore")
