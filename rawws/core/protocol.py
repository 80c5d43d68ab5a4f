"""A sans-I/O WebSocket connection on wsproto's frame engine: bytes in, events out; messages in, bytes out.

wsproto's ``FrameProtocol`` parses and builds every frame (RFC 6455 §5, RFC
7692 through its extensions); this class is the connection around it, in
place of wsproto's ``Connection``, whose event objects cost more per frame
than the rest of the edge. What it adds:

* whole messages: fragments are joined here (their size is bounded on frame
  headers by ``rawws.core.frames`` before they are buffered, and by the inflater
  for compressed ones). A text message in pieces is held as its UTF-8 bytes,
  checked piece by piece, and decoded once when whole: what a partial message
  holds (``held_bytes``) is at most the message limit, whatever its characters;
* a read budget (``rawws.core.budget``), when the edge sets one: each step of
  parsing is paid before the next is taken, and once it is overdrawn nothing
  more is parsed (``throttled``) until the edge refills it and feeds again;
* automatic pongs and the closing handshake's answer, produced in the order
  the frames arrived, so an echo of a message is never sent after our close;
* a failure (protocol error, bad UTF-8, too big) becomes our close frame with
  the code wsproto chose and a request to drop TCP; nothing more is parsed;
* keepalive bookkeeping: which ping is outstanding and since when;
* replies that stay in order when the edge holds the core's output: until the
  close frame that answers the peer's close (or fails the connection) has been
  taken with ``data_to_send``, messages may still be sent ahead of it
  (``can_send``), as replies to what arrived before that close;
* for a client that asks: the messages that arrive after its close frame
  (``receive_while_closing``), and every frame reported (``trace_frames``,
  ``rawws.core.trace``).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterator

from wsproto.extensions import Extension
from wsproto.frame_protocol import Opcode, ParseFailed

from rawws.core.budget import ReadBudget
from rawws.core.closecodes import ABNORMAL_CLOSURE, NORMAL_CLOSURE
from rawws.core.events import Closed, Event, MessageReceived, PongReceived
from rawws.core.frames import TunedFrameProtocol
from rawws.core.trace import FrameEngine, FrameTrace, TracingFrames
from rawws.errors import ConnectionClosed

# Looked up once: these are compared for every frame.
_TEXT, _BINARY, _PING, _PONG, _CLOSE = (
    Opcode.TEXT,
    Opcode.BINARY,
    Opcode.PING,
    Opcode.PONG,
    Opcode.CLOSE,
)


class State(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"  # we sent a close frame and wait for the peer's
    CLOSED = "closed"


_OPEN = State.OPEN  # compared for every frame


class WebSocket:
    """One WebSocket connection's protocol state, for either role, with no I/O."""

    __slots__ = (
        "_frames",
        "_outgoing",
        "_fragments",
        "_budget",
        "_pending_ping",
        "_close_queued",
        "output_pending",
        "state",
        "close_code",
        "close_reason",
        "close_transport",
        "receive_while_closing",
    )

    def __init__(
        self,
        *,
        client: bool,
        extensions: list[Extension] | None = None,
        max_message_bytes: int | None = None,
    ) -> None:
        # The limit is checked on frame headers (``rawws.core.frames``) and on inflated bytes
        # (``PerMessageDeflate``, which the handshake built with the same limit).
        self._frames: FrameEngine = TunedFrameProtocol(
            client, extensions or [], max_message_bytes
        )
        self._outgoing: list[bytes | bytearray] = []
        #: The pieces of the message under way: bytes, a text message's too (decoded once whole).
        self._fragments: list[bytes] = []
        self._budget: ReadBudget | None = None
        self._pending_ping: bytes | None = None
        #: Our close frame (the answer to the peer's, or a failure's) waits in ``_outgoing``.
        self._close_queued = False
        #: ``receive_data`` queued something to write (a pong, a close) not yet taken by ``data_to_send``
        #: (an attribute, not a property: an edge that holds replies back reads it for every event).
        self.output_pending = False
        self.state = State.OPEN
        self.close_code: int | None = None
        self.close_reason = ""
        #: True once the edge should drop TCP (after writing what is pending).
        self.close_transport = False
        #: Messages that arrive after our close frame are delivered too (they answer what was sent
        #: before it), not dropped; the edge that sets this reads them while it waits for the close.
        self.receive_while_closing = False

    @property
    def read_budget(self) -> ReadBudget | None:
        """What parsing may cost (``None``: unbounded); the edge refills it with its clock."""
        return self._budget

    @read_budget.setter
    def read_budget(self, budget: ReadBudget | None) -> None:
        self._budget = budget
        self._frames.budget = budget

    @property
    def throttled(self) -> bool:
        """The budget is overdrawn: nothing more is parsed until it is refilled and bytes are fed again."""
        budget = self._budget
        return budget is not None and budget.exhausted

    @property
    def assembling(self) -> bool:
        """Part of a message has arrived and not the rest (the edge gives it a time limit)."""
        return bool(self._fragments)

    @property
    def held_bytes(self) -> int:
        """The bytes the message under way holds: at most the message limit."""
        return sum(len(part) for part in self._fragments)

    def trace_frames(self, trace: FrameTrace) -> None:
        """Report every frame sent or received from now on to ``trace`` (``rawws send -v``)."""
        self._frames = TracingFrames(self._frames, trace)

    # -- bytes in, events out -------------------------------------------------

    def receive_data(self, data: bytes) -> Iterator[Event]:
        """Feed bytes from the network; yields events lazily, queueing replies in order.

        Call ``data_to_send()`` after each event so replies keep their place
        relative to what the application sends in response to that event.
        """
        return self._events(
            data
        )  # the generator itself: no layer between it and the caller

    def receive_eof(self) -> Iterator[Event]:
        """The peer closed TCP. Without a close frame first, that is 1006."""
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSED
        self.close_transport = True
        self._frames.release()
        self.close_code = (
            self.close_code if self.close_code is not None else ABNORMAL_CLOSURE
        )
        yield Closed(ABNORMAL_CLOSURE, "connection lost", by_peer=True)

    def _events(self, data: bytes) -> Iterator[Event]:
        if self.state is State.CLOSED:
            return
        self._frames.receive_bytes(data)  # once the first event is asked for
        try:
            for frame in self._frames.received_frames():
                opcode = frame.opcode
                if opcode is _BINARY or opcode is _TEXT:
                    if (
                        frame.message_finished
                        and self.state is _OPEN
                        and not self._fragments
                    ):
                        # The common case first: a whole message in one frame, a text one already a str.
                        whole: str | bytes = frame.payload  # type: ignore[assignment]  # bytes for BINARY
                        yield MessageReceived(
                            whole.decode("utf-8")
                            if opcode is _TEXT and type(whole) is bytes
                            else whole
                        )
                        continue
                    if self.state is not _OPEN and not self.receive_while_closing:
                        continue  # after our close nothing is delivered: nothing is held either
                    # A whole text message in one piece is a str; a piece of one is bytes (frames.py).
                    payload: str | bytes = frame.payload  # type: ignore[assignment]  # bytes for BINARY
                    if frame.message_finished and not self._fragments:
                        message: str | bytes | None = (
                            payload.decode("utf-8")
                            if type(payload) is bytes and opcode is _TEXT
                            else payload
                        )
                    else:
                        message = self._reassemble(
                            payload,  # type: ignore[arg-type]  # a piece: bytes
                            frame.message_finished,
                            opcode is _TEXT,
                        )
                    if message is not None and (
                        self.state is State.OPEN or self.receive_while_closing
                    ):
                        yield MessageReceived(message)
                elif opcode is _PING:
                    if self.state is State.OPEN:  # after our close, a ping gets no pong
                        self._outgoing.append(self._frames.pong(frame.payload))  # type: ignore[arg-type]  # wsproto 1.3 (pinned in uv.lock) types Frame.payload as the union for every opcode
                        self.output_pending = True
                elif opcode is _PONG:
                    if frame.payload == self._pending_ping:
                        self._pending_ping = None
                    yield PongReceived(bytes(frame.payload))  # type: ignore[arg-type]  # wsproto 1.3 (pinned in uv.lock) types Frame.payload as the union for every opcode
                elif opcode is _CLOSE:
                    close: tuple[int, str] = frame.payload  # type: ignore[assignment]  # wsproto 1.3: (code, reason) for CLOSE
                    code, reason = close
                    yield self._on_close(code, reason)
                    return
        except ParseFailed as exc:
            yield self._on_failure(exc.code, str(exc))

    def _reassemble(
        self, data: bytes, finished: bool, text: bool
    ) -> str | bytes | None:
        self._fragments.append(data)
        if not finished:
            return None
        parts, self._fragments = self._fragments, []
        whole = b"".join(parts)
        # Checked piece by piece as it came (frames.py): this cannot fail.
        return whole.decode("utf-8") if text else whole

    def _on_close(self, code: int, reason: str) -> Closed:
        self.close_transport = True
        self._fragments = []
        self._frames.release()  # nothing is parsed after a close frame
        if self.state is State.OPEN:
            # The peer started the closing handshake: echo its code (§5.5.1).
            self._outgoing.append(self._frames.close(code, reason))
            self._close_queued = self.output_pending = True
            self.state = State.CLOSED
            self.close_code, self.close_reason = code, reason
            return Closed(code, reason, by_peer=True)
        # We started it and this is the answer. RFC 6455 §7.1.5: the connection's
        # close code is the one in the close frame received (usually ours, echoed;
        # not when the peer's own close crossed ours).
        self.state = State.CLOSED
        self.close_code, self.close_reason = code, reason
        return Closed(code, reason, by_peer=False)

    def _on_failure(self, code: int, reason: str) -> Closed:
        """wsproto could not parse what the peer sent: fail the connection with its code (§7.1.7)."""
        self.close_transport = True
        self._fragments = []
        self._frames.release()
        if self.state is State.OPEN:
            self._outgoing.append(self._frames.close(code, _short(reason)))
            self._close_queued = self.output_pending = True
        self.state = State.CLOSED
        self.close_code, self.close_reason = code, reason
        return Closed(code, reason, by_peer=False)

    # -- messages in, bytes out ----------------------------------------------

    def data_to_send(self) -> bytes:
        """Everything queued by ``receive_data`` (pongs, close answers) since the last call."""
        if not self._outgoing:
            return b""
        data = b"".join(self._outgoing)
        self._outgoing.clear()
        self._close_queued = self.output_pending = False
        return data

    @property
    def input_pending(self) -> bool:
        """Bytes received that no event has come of yet: the events of ``receive_data`` may go on.

        ``False`` means resuming them yields nothing more (a frame still arriving in
        part may keep it ``True``, which costs a caller only a needless wait).
        """
        return self._frames.unparsed_bytes > 0

    @property
    def can_send(self) -> bool:
        """Messages may be sent: open, or closed by a frame whose answer has not left the core yet.

        RFC 6455 §5.5.1 lets an endpoint finish what it sends before it answers a
        close; an edge that holds ``data_to_send`` until the application has
        replied to the messages received before the close uses this window.
        """
        return self.state is State.OPEN or self._close_queued

    def send(self, message: str | bytes) -> bytes:
        """The frame bytes of one whole message (possibly a ``bytearray``: it goes straight to a transport)."""
        if self.state is not State.OPEN and not self._close_queued:
            raise ConnectionClosed(
                self.close_code, f"cannot send: connection is {self.state.value}"
            )
        return self._frames.send_data(message, True)  # type: ignore[return-value]  # wsproto 1.3 says bytearray; frames.py's override may give bytes

    def ping(self, payload: bytes | None = None) -> bytes:
        """A ping frame; its payload is remembered so the matching pong clears it."""
        if self.state is not State.OPEN:
            raise ConnectionClosed(
                self.close_code, f"cannot ping: connection is {self.state.value}"
            )
        payload = os.urandom(4) if payload is None else payload
        self._pending_ping = payload
        return bytes(self._frames.ping(payload))

    @property
    def shared_deflate_bits(self) -> int | None:
        """The window size of the shared compressed frames this connection can send as they are, or ``None``.

        ``None`` without compression or with a context of its own (``dedicated``):
        such a connection must compress each message itself.
        """
        for extension in self._frames.extensions:
            bits = getattr(extension, "shared_window_bits", None)
            if bits is not None:
                return int(bits)
        return None

    @property
    def awaiting_pong(self) -> bool:
        return self._pending_ping is not None

    def close(self, code: int = NORMAL_CLOSURE, reason: str = "") -> bytes:
        """Start the closing handshake; the peer's close frame finishes it."""
        if self.state is not State.OPEN:
            return b""
        self.state = State.CLOSING
        self.close_code, self.close_reason = code, reason
        if not self.receive_while_closing:
            self._fragments = []  # never to be delivered: its memory goes now
        return bytes(self._frames.close(code, _short(reason) or None))

    def abort(self, code: int = ABNORMAL_CLOSURE, reason: str = "") -> None:
        """Give up on the connection without a handshake (timeouts, dead peers)."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.state = State.CLOSED
        self.close_transport = True
        self._close_queued = False
        self._frames.release()


def _short(reason: str) -> str:
    """Close reasons go on the wire; keep them within a control frame (≤ 123 bytes)."""
    encoded = reason.encode("utf-8")[:123]
    return encoded.decode("utf-8", errors="ignore")
