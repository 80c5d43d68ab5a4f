"""`rawws chat`'s sessions: a terminal tied to a connection, and, for the chat protocol, to its successors.

``chat()`` ties a terminal to a ``ClientConnection``: Ctrl-D, Ctrl-C or ``/quit``
close with 1000 (and every message received until the server answers is shown);
a connection that ends on its own is reported by the caller.

``chat_session()`` does the same for the chat protocol (``rawws chat --user``),
whose rules live in ``rawws.chatclient.state`` (``ChatState``): it sends what the
state answers (paced to the server's rate by ``rawws.chatclient.outbox``),
shows what it says, and after a dropped connection opens a new one on a backoff
schedule while the user can still type ``/quit``. At the end of input it waits
until every line is stored (or no progress was made for a while), and says how
many were not.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rawws.chatclient.answers import is_welcome
from rawws.chatclient.commands import Quit, parse_input
from rawws.chatclient.marks import READ_EVERY_S, ReadMarks
from rawws.chatclient.outbox import Outbox
from rawws.chatclient.reconnect import Backoff, describe, retryable, should_reconnect
from rawws.chatclient.state import ChatState, Output
from rawws.chatclient.terminal import (
    QUIT_COMMAND,
    EndOfInput,
    InputAction,
    Interrupt,
    MessageFormat,
    RawText,
    Submit,
    Terminal,
)
from rawws.client.connection import ClientConnection
from rawws.core.closecodes import ABNORMAL_CLOSURE, NORMAL_CLOSURE
from rawws.errors import ConnectionClosed, NotTheChat

# -- the chat session ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatEnd:
    """How a chat ended: ``by_user`` when the user quit (we closed with 1000).

    ``gave_up`` says why the last reconnection attempt failed when all were
    used up; ``close_timed_out`` that our close frame was not answered in time;
    ``not_stored`` how many typed lines the server had not stored when the user quit.
    """

    code: int
    reason: str
    by_user: bool
    gave_up: str | None = None
    close_timed_out: bool = False
    not_stored: int = 0


@dataclass(frozen=True, slots=True)
class _Disconnected:
    pass


async def chat(
    ws: ClientConnection,
    terminal: Terminal,
    message_format: MessageFormat | None = None,
) -> ChatEnd:
    """Send typed lines and show incoming messages at the same time, until the user quits or the connection ends."""
    message_format = message_format or RawText()
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[InputAction | _Disconnected] = asyncio.Queue()
    receiver = asyncio.create_task(_show_incoming(ws, terminal, message_format, inbox))
    terminal.start(inbox.put_nowait)
    loop.add_signal_handler(signal.SIGINT, inbox.put_nowait, Interrupt())
    try:
        while True:
            item = await inbox.get()
            if isinstance(item, _Disconnected):
                return ChatEnd(ws.close_code or 1006, ws.close_reason, by_user=False)
            if isinstance(item, (EndOfInput, Interrupt)) or (
                isinstance(item, Submit) and item.line.strip() == QUIT_COMMAND
            ):
                await ws.close(NORMAL_CLOSURE)
                # What came before the server's answer to our close is shown too (the replies
                # to the last lines, with ``read_while_closing``): the receiver ends on its own.
                await asyncio.wait([receiver])
                return ChatEnd(ws.close_code or 1006, ws.close_reason, by_user=True)
            message = message_format.outgoing(item.line)
            if message is not None:
                with contextlib.suppress(
                    ConnectionClosed
                ):  # the receiver reports the close
                    await ws.send(message)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiver
        terminal.stop()


async def _show_incoming(
    ws: ClientConnection,
    terminal: Terminal,
    message_format: MessageFormat,
    inbox: asyncio.Queue[InputAction | _Disconnected],
) -> None:
    try:
        async for message in ws:
            text = message_format.incoming(message)
            if text is not None:
                terminal.show(text)
    except ConnectionClosed:
        pass
    inbox.put_nowait(_Disconnected())


# -- the chat protocol session: reconnects with recovery ---------------------------------------

# /quit or the end of input waits for every line to be stored; it gives up when nothing
# was sent or received for this long (beyond the wait the pace imposes)
QUIT_ACK_TIMEOUT_S = 5.0
# after ``rate_limited``, the says still without an ack this long after it were dropped
SETTLE_S = 2.0


@dataclass(frozen=True, slots=True)
class _Lost:
    ws: ClientConnection


@dataclass(frozen=True, slots=True)
class _Reconnected:
    ws: ClientConnection


@dataclass(frozen=True, slots=True)
class _ReconnectFailed:
    error: BaseException


@dataclass(frozen=True, slots=True)
class _GaveUp:
    reason: str


_SessionEvent = InputAction | _Lost | _Reconnected | _ReconnectFailed | _GaveUp


class ChatSession:
    """The asyncio edge of ``ChatState``: one connection at a time, a new one after a drop.

    ``open_connection`` opens an authenticated ``/ws`` (a fresh ticket each
    time); ``None`` means the connection cannot be opened again (the URL held a
    single-use ticket). The connection is reopened after a close whose code
    ``should_reconnect`` accepts, on ``backoff``'s schedule; the count of
    attempts starts over once a new connection has every room re-joined.
    A failure that ``retryable`` refuses (a refused upgrade, a wrong password)
    is raised from ``run``, and so is ``NotTheChat`` when a connection's first
    frame is not the chat's welcome (the URL names another WebSocket, e.g. ``/echo``).
    """

    def __init__(
        self,
        terminal: Terminal,
        state: ChatState,
        open_connection: Callable[[], Awaitable[ClientConnection]] | None,
        backoff: Backoff,
        *,
        rng: random.Random | None = None,
        quit_ack_timeout: float = QUIT_ACK_TIMEOUT_S,
        settle_s: float = SETTLE_S,
    ) -> None:
        self.terminal = terminal
        self.state = state
        self.open_connection = open_connection
        self.backoff = backoff
        self.rng = rng or random.Random()
        self.quit_ack_timeout = quit_ack_timeout
        self.settle_s = settle_s
        self.outbox = Outbox(state.mark_sent)
        self.ws: ClientConnection | None = None
        self.failed_attempts = 0  # since the last recovered connection
        self._inbox: asyncio.Queue[_SessionEvent] = asyncio.Queue()
        self._receiver: asyncio.Task[None] | None = None
        self._reconnector: asyncio.Task[None] | None = None
        self._settler: asyncio.Task[None] | None = None
        self.marks = ReadMarks()
        self._marker: asyncio.Task[None] | None = None
        self._last_close: tuple[int, str] = (ABNORMAL_CLOSURE, "")
        self._not_the_chat: NotTheChat | None = (
            None  # raised even by a quit already under way
        )

    async def run(self, ws: ClientConnection) -> ChatEnd:
        loop = asyncio.get_running_loop()
        self.terminal.start(self._inbox.put_nowait)
        loop.add_signal_handler(signal.SIGINT, self._inbox.put_nowait, Interrupt())
        try:
            await self._attach(ws)
            self._marker = asyncio.create_task(self._mark_read())
            while True:
                end = await self._handle(await self._inbox.get())
                if end is not None:
                    return end
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            await self._cleanup()
            self.terminal.stop()

    async def _handle(self, item: _SessionEvent) -> ChatEnd | None:
        if isinstance(item, Interrupt):
            return await self._quit(wait_for_acks=False)
        if isinstance(item, EndOfInput):
            return await self._quit(wait_for_acks=True)
        if isinstance(item, Submit):
            command = parse_input(item.line)
            if command is None:
                return None
            if isinstance(command, Quit):
                return await self._quit(wait_for_acks=True)
            await self._apply(self.state.command(command))
            return None
        if isinstance(item, _Lost):
            return self._lost(item.ws) if item.ws is self.ws else None
        if isinstance(item, _Reconnected):
            self._reconnector = None
            await self._attach(item.ws)
            return None
        if isinstance(item, _ReconnectFailed):
            raise item.error
        if isinstance(item, _GaveUp):
            code, reason = self._last_close
            return ChatEnd(code, reason, by_user=False, gave_up=item.reason)
        raise TypeError(f"unexpected event {item!r}")

    # -- one connection --

    async def _attach(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.outbox.attach(ws)
        self._receiver = asyncio.create_task(self._receive(ws))
        await self._apply(self.state.on_connected())

    async def _receive(self, ws: ClientConnection) -> None:
        first = True
        try:
            async for message in ws:
                if first and not is_welcome(message):
                    self._not_the_chat = NotTheChat(message)
                    self._inbox.put_nowait(_ReconnectFailed(self._not_the_chat))
                    return
                # an answer may send too: /msg's join and say follow the server's answers
                await self._apply(self.state.receive(message))
                if first and self.state.rate_limits is not None:
                    self.outbox.configure(self.state.rate_limits)
                first = False
                self.outbox.progress.set()
                if self.state.says.in_doubt and self._settler is None:
                    self._settler = asyncio.create_task(self._settle())
                if self.failed_attempts and self.state.recovered:
                    self.failed_attempts = 0
        except ConnectionClosed:
            pass
        finally:
            self.outbox.progress.set()  # a quit waiting for acks waits no more
            self._inbox.put_nowait(_Lost(ws))

    async def _settle(self) -> None:
        """After ``rate_limited``: the says still in doubt ``settle_s`` later were dropped (their
        acks would have come): sent again. A later ``rate_limited`` starts its own while."""
        try:
            while self.state.says.in_doubt:
                upto = self.state.says.drops
                await asyncio.sleep(self.settle_s)
                await self._apply(self.state.settle(upto))
        finally:
            self._settler = None

    async def _mark_read(self) -> None:
        """What was printed is read: the markers go every ``READ_EVERY_S`` (``marks``)."""
        while True:
            await asyncio.sleep(READ_EVERY_S)
            if self.ws is not None:
                self.outbox.put(self.marks.due(self.state))

    async def _apply(self, output: Output) -> None:
        """Show the lines; queue the frames, to go when the pace allows (none while disconnected)."""
        self._show(output.show)
        if self.ws is None:
            return
        if output.throttled:
            self.outbox.throttled()
        self.outbox.put_first(output.resend)
        self.outbox.put(output.send)

    def _show(self, lines: list[str]) -> None:
        for line in lines:
            self.terminal.show(line)

    # -- losing it and getting it back --

    def _lost(self, ws: ClientConnection) -> ChatEnd | None:
        self.ws = None
        code = ws.close_code if ws.close_code is not None else ABNORMAL_CLOSURE
        self._last_close = (code, ws.close_reason)
        self.outbox.detach()
        self._show(self.state.on_disconnected().show)
        if (
            self.open_connection is None
            or self.backoff.attempts == 0
            or not should_reconnect(code)
        ):
            return ChatEnd(code, ws.close_reason, by_user=False)
        if self.failed_attempts >= self.backoff.attempts:
            return ChatEnd(
                code,
                ws.close_reason,
                by_user=False,
                gave_up="the new connections kept dropping",
            )
        how = f"{code} {ws.close_reason}".rstrip()
        self._show([f"! connection lost ({how}); reconnecting"])
        self._reconnector = asyncio.create_task(self._reconnect(self.open_connection))
        return None

    async def _reconnect(
        self, open_connection: Callable[[], Awaitable[ClientConnection]]
    ) -> None:
        """One line per attempt, before its wait: its number, the wait, why the one before failed."""
        last = "no attempt made"
        while self.failed_attempts < self.backoff.attempts:
            self.failed_attempts += 1
            delay = self.backoff.delay(self.failed_attempts, self.rng)
            why = (
                f" (attempt {self.failed_attempts - 1}: {last})"
                if self.failed_attempts > 1
                else ""
            )
            line = f"! attempt {self.failed_attempts} of {self.backoff.attempts} in {delay:.1f}s{why}"
            self._show([line])
            await asyncio.sleep(delay)
            try:
                ws = await open_connection()
            except Exception as exc:
                if not retryable(exc):
                    self._inbox.put_nowait(_ReconnectFailed(exc))
                    return
                last = describe(exc)
                continue
            self._inbox.put_nowait(_Reconnected(ws))
            return
        self._inbox.put_nowait(_GaveUp(last))

    # -- the end --

    async def _quit(self, *, wait_for_acks: bool) -> ChatEnd:
        ws = self.ws
        if ws is None:
            code, reason = self._last_close
            not_stored = self._not_stored()
            self._show(self.state.on_disconnected(quitting=True).show)
            return ChatEnd(code, reason, by_user=True, not_stored=not_stored)
        if wait_for_acks:
            await self._drain()
        await ws.close(NORMAL_CLOSURE)
        if (
            self._not_the_chat is not None
        ):  # found while waiting for acks that will never come
            raise self._not_the_chat
        not_stored = self._not_stored()
        self._show(
            self.state.on_disconnected(quitting=True).show
        )  # says still without an ack
        return ChatEnd(
            ws.close_code or ABNORMAL_CLOSURE,
            ws.close_reason,
            by_user=True,
            close_timed_out=ws.close_timed_out,
            not_stored=not_stored,
        )

    def _not_stored(self) -> int:
        """Typed lines the server refused or never acknowledged (some may be stored: no ack came)."""
        return len(self.state.pending) + self.state.says.refused

    async def _drain(self) -> None:
        """Until every line is sent and stored, while the connection lasts and things move.

        Each frame sent or received is progress; ``quit_ack_timeout`` without any
        (beyond the wait the pace imposes) ends the wait, as does a lost connection.
        """
        progress = self.outbox.progress
        while not self.state.answered or not self.outbox.empty:
            if self._receiver is None or self._receiver.done():
                return
            progress.clear()
            patience = self.quit_ack_timeout + self.outbox.pacer.delay(
                asyncio.get_running_loop().time()
            )
            try:
                await asyncio.wait_for(progress.wait(), patience)
            except TimeoutError:
                return

    async def _cleanup(self) -> None:
        await self.outbox.close()
        for task in (self._reconnector, self._receiver, self._settler, self._marker):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        while not self._inbox.empty():  # a connection opened while we were quitting
            item = self._inbox.get_nowait()
            if isinstance(item, _Reconnected):
                await item.ws.close()
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()


async def chat_session(
    ws: ClientConnection,
    terminal: Terminal,
    state: ChatState,
    open_connection: Callable[[], Awaitable[ClientConnection]] | None,
    backoff: Backoff,
    *,
    rng: random.Random | None = None,
    quit_ack_timeout: float = QUIT_ACK_TIMEOUT_S,
    settle_s: float = SETTLE_S,
) -> ChatEnd:
    """Speak the chat protocol on ``ws`` (and on its successors) until the user quits or reconnecting ends."""
    session = ChatSession(
        terminal,
        state,
        open_connection,
        backoff,
        rng=rng,
        quit_ack_timeout=quit_ack_timeout,
        settle_s=settle_s,
    )
    return await session.run(ws)
