"""Frame tracing, sans I/O: every frame a connection sends or receives, reported as it is built or parsed.

``rawws send -v`` and ``rawws chat -v`` show the frames of a connection as
``websocat -v`` does. The core's frame engine (``TunedFrameProtocol``) is wrapped
by ``TracingFrames``, which hands a ``TracedFrame`` to a callback for each frame
and otherwise does nothing: a connection that is not traced keeps the engine
itself, so tracing costs the server's hot path nothing. Sizes are those of the
data (after inflating, before compressing), as the application sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Protocol

from wsproto.extensions import Extension
from wsproto.frame_protocol import Frame, Opcode

from rawws.core.budget import ReadBudget

_KINDS = {
    Opcode.TEXT: "text",
    Opcode.BINARY: "binary",
    Opcode.PING: "ping",
    Opcode.PONG: "pong",
    Opcode.CLOSE: "close",
}


@dataclass(frozen=True, slots=True)
class TracedFrame:
    """One frame: ``sent`` by us or received; its kind; its data (``str`` for text); for a close its code and
    reason (``code`` ``None``: no code). ``fragment`` is ``None`` for a whole message or a control frame, else
    ``"first"``, ``"middle"`` or ``"last"``."""

    sent: bool
    kind: str
    data: str | bytes = b""
    code: int | None = None
    reason: str = ""
    fragment: str | None = None


FrameTrace = Callable[[TracedFrame], None]


class FrameEngine(Protocol):
    """What ``rawws.core.protocol.WebSocket`` asks of its frame engine (wsproto's ``FrameProtocol``)."""

    extensions: list[Extension]
    #: What each parsing step is paid from (``rawws.core.budget``), or ``None``.
    budget: ReadBudget | None

    def receive_bytes(self, data: bytes) -> None: ...

    @property
    def unparsed_bytes(self) -> int: ...

    def received_frames(self) -> Iterator[Frame]: ...

    def release(self) -> None: ...

    def send_data(
        self, payload: bytes | bytearray | str = b"", fin: bool = True
    ) -> bytearray: ...

    def ping(self, payload: bytes = b"") -> bytearray: ...

    def pong(self, payload: bytes = b"") -> bytearray: ...

    def close(
        self, code: int | None = None, reason: str | None = None
    ) -> bytearray: ...


class TracingFrames:
    """A frame engine that reports each frame to ``trace`` and leaves the work to the engine it wraps."""

    def __init__(self, engine: FrameEngine, trace: FrameTrace) -> None:
        self._engine = engine
        self._trace = trace
        self._receiving = (
            False  # a received message is under way (its first fragments came)
        )
        self._sending = False  # a message we send is under way

    @property
    def extensions(self) -> list[Extension]:
        return self._engine.extensions

    @extensions.setter
    def extensions(self, value: list[Extension]) -> None:
        self._engine.extensions = value

    @property
    def budget(self) -> ReadBudget | None:
        return self._engine.budget

    @budget.setter
    def budget(self, value: ReadBudget | None) -> None:
        self._engine.budget = value

    def receive_bytes(self, data: bytes) -> None:
        self._engine.receive_bytes(data)

    def release(self) -> None:
        self._engine.release()

    @property
    def unparsed_bytes(self) -> int:
        return self._engine.unparsed_bytes

    def received_frames(self) -> Generator[Frame, None, None]:
        for frame in self._engine.received_frames():
            self._trace(self._received(frame))
            yield frame

    def _received(self, frame: Frame) -> TracedFrame:
        kind = _KINDS.get(frame.opcode, f"opcode {int(frame.opcode)}")
        if frame.opcode is Opcode.CLOSE:
            close: tuple[int, str] = frame.payload  # type: ignore[assignment]  # wsproto: (code, reason) for CLOSE
            code, reason = close
            return TracedFrame(
                False, kind, code=None if code == 1005 else int(code), reason=reason
            )
        data = frame.payload  # wsproto 1.3 types it as the union for every opcode
        payload: str | bytes = data if isinstance(data, str) else bytes(data)  # type: ignore[arg-type]
        if frame.opcode is Opcode.TEXT and type(payload) is bytes:
            # A piece of a text message arrives as bytes (frames.py); shown as text, a character
            # cut at the piece's edge shown as U+FFFD.
            payload = payload.decode("utf-8", "replace")
        fragment = None
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            fragment = _fragment(self._receiving, frame.message_finished)
            self._receiving = not frame.message_finished
        return TracedFrame(False, kind, payload, fragment=fragment)

    def send_data(
        self, payload: bytes | bytearray | str = b"", fin: bool = True
    ) -> bytearray:
        data = payload if isinstance(payload, str) else bytes(payload)
        fragment = _fragment(self._sending, fin)
        self._sending = not fin
        self._trace(
            TracedFrame(
                True,
                "text" if isinstance(payload, str) else "binary",
                data,
                fragment=fragment,
            )
        )
        return self._engine.send_data(payload, fin)

    def ping(self, payload: bytes = b"") -> bytearray:
        self._trace(TracedFrame(True, "ping", bytes(payload)))
        return self._engine.ping(payload)

    def pong(self, payload: bytes = b"") -> bytearray:
        self._trace(TracedFrame(True, "pong", bytes(payload)))
        return self._engine.pong(payload)

    def close(self, code: int | None = None, reason: str | None = None) -> bytearray:
        self._trace(
            TracedFrame(
                True,
                "close",
                code=None if code in (None, 1005) else int(code),
                reason=reason or "",
            )
        )
        return self._engine.close(code, reason)


def _fragment(started: bool, finished: bool) -> str | None:
    """Which fragment of its message a data frame is, or ``None`` for a whole message."""
    if not started:
        return None if finished else "first"
    return "last" if finished else "middle"
