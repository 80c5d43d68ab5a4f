"""`rawws send` and `rawws chat`: connect, log in, talk, and turn every expected failure into an exit code.

Each command raises `ClientFailure` (or lets a known exception through) and `run_client_command` maps it
to one line on stderr and its exit code: a user never sees a traceback for a bad URL or a refused upgrade,
and the line names the fix (`rawws.cli.mistakes`). `rawws send` prints what comes back, `-v` every frame
(`rawws.cli.output`).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from rawws.chat.client_frames import join_frame, say_frame
from rawws.chat.wire import DEFAULT_ROOM
from rawws.chatclient.answers import NotStored, is_welcome, send_outcome
from rawws.chatclient.chat_login import ChatLogin
from rawws.chatclient.commands import check_text
from rawws.chatclient.reconnect import Backoff
from rawws.chatclient.session import chat, chat_session
from rawws.chatclient.state import ChatState
from rawws.chatclient.target import chat_target, url_credential
from rawws.chatclient.terminal import RawTerminal, Terminal, terminal_for
from rawws.chatclient.visible import visible
from rawws.cli import mistakes
from rawws.cli.exits import (
    EXIT_CANNOT_CONNECT,
    EXIT_CLOSED_WITH_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NOT_STORED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_TIMEOUT,
    EXIT_USAGE,
)
from rawws.cli.mistakes import closed_message, where
from rawws.cli.output import Replies, trace_line, trace_to_stderr
from rawws.cli.parser import PASSWORD_VARIABLE
from rawws.client.connect import (
    OK_CLOSE_CODES,
    ClientConnection,
    ConnectionClosed,
    ConnectOptions,
    connect,
)
from rawws.config import DEFAULT_MAX_MESSAGE_BYTES
from rawws.core.trace import FrameTrace
from rawws.errors import (
    AuthFailed,
    ClientFailure,
    HandshakeRejected,
    InvalidHandshake,
    InvalidURI,
    NotTheChat,
)


def _connect_options(
    args: argparse.Namespace,
    secure: bool | None = None,
    trace: FrameTrace = trace_to_stderr,
) -> ConnectOptions:
    """``connect``'s options from the flags; ``-v`` traces every frame to ``trace``."""
    if secure is None:
        secure = args.url.lower().startswith("wss:")
    return {
        "subprotocols": args.subprotocols,
        "additional_headers": args.headers,
        "compression": "deflate" if args.compression else None,
        "max_size": args.max_message_bytes or DEFAULT_MAX_MESSAGE_BYTES,
        "open_timeout": args.timeout,
        "close_timeout": args.timeout,
        "insecure": args.insecure and secure,
        "trace": trace if args.verbose else None,
    }


def _message_from(args: argparse.Namespace) -> str | bytes:
    given: str = args.message
    if given != "-":
        return given.encode("utf-8") if args.binary else given
    data = sys.stdin.buffer.read()
    if args.binary:
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ClientFailure(
            EXIT_USAGE, "stdin is not UTF-8 text; use --binary to send bytes"
        ) from None
    return (
        text[:-2]
        if text.endswith("\r\n")
        else text[:-1]
        if text.endswith("\n")
        else text
    )


async def send_command(args: argparse.Namespace, message: str | bytes) -> None:
    """``rawws send`` without ``--user``: one raw message, then a normal close (checked, for the exit code).

    Every message received until the server answers our close is printed: the
    replies to MESSAGE (an echo arrives before the close's answer, since a
    server answers frames in order) and anything the server said first.
    """
    options = _connect_options(args)
    options["read_while_closing"] = True
    ws = await connect(args.url, **options)
    printer = asyncio.create_task(_print_replies(ws, Replies()))
    try:
        async with asyncio.timeout(args.timeout):
            await ws.send(message)
    finally:
        await ws.close()
        await printer  # it ends once the last message received is printed
    _check_close(ws)


async def _print_replies(ws: ClientConnection, replies: Replies) -> None:
    """Every message, as it comes, until the connection is over (``recv`` keeps those that came after our close)."""
    while True:
        try:
            replies.show(await ws.recv())
        except ConnectionClosed:
            return


def _trace_for(terminal: Terminal) -> FrameTrace:
    """``chat -v``: on a terminal in raw mode, frames print above the prompt line like messages do."""
    if isinstance(terminal, RawTerminal) and sys.stderr.isatty():
        return lambda frame: terminal.show(trace_line(frame))
    return trace_to_stderr


async def chat_command(args: argparse.Namespace) -> None:
    """``rawws chat`` without the chat protocol: typed lines out, messages in, as raw text."""
    terminal = terminal_for()
    options = _connect_options(args, trace=_trace_for(terminal))
    options["read_while_closing"] = (
        True  # the replies to the last lines typed (or piped) are shown
    )
    ws = await connect(args.url, **options)
    compression = "compressed" if ws.compression else "uncompressed"
    subprotocol = f", subprotocol {ws.subprotocol}" if ws.subprotocol else ""
    print(
        f"connected to {where(args.url)} ({compression}{subprotocol}); Ctrl-D or /quit to leave",
        flush=True,
    )
    try:
        end = await chat(ws, terminal)
    finally:
        await ws.close()
    if end.by_user:
        _check_close(ws)
        return
    if end.code not in OK_CLOSE_CODES:
        raise ClientFailure(
            EXIT_CLOSED_WITH_ERROR, closed_message(end.code, end.reason)
        )
    print(visible(closed_message(end.code, end.reason)), file=sys.stderr)


# -- the chat protocol: logging in, tickets, `send --user`, `chat --user` ------------------------


def speaks_chat(args: argparse.Namespace) -> bool:
    """``--user``, or (``rawws chat`` only, without ``--raw``) a token or ticket in the URL."""
    if args.user:
        return True
    return (
        args.command == "chat" and not args.raw and url_credential(args.url) is not None
    )


def read_password(user: str) -> str:
    """``$RAWWS_PASSWORD``, else a prompt on the terminal without echo. Never printed, never logged."""
    password = os.environ.get(PASSWORD_VARIABLE)
    if password is None:
        try:
            os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
        except OSError:
            message = (
                f"no terminal to ask for {user}'s password on: set {PASSWORD_VARIABLE}"
            )
            raise ClientFailure(EXIT_USAGE, message) from None
        try:
            password = getpass.getpass(f"password for {user}: ")
        except EOFError:
            password = ""
    if not password:
        raise ClientFailure(EXIT_USAGE, f"no password given for {user}")
    return password


def _chat_opener(
    args: argparse.Namespace, password: str | None, trace: FrameTrace = trace_to_stderr
) -> tuple[Callable[[], Awaitable[ClientConnection]], bool, str]:
    """How to open the chat WebSocket; whether it can be opened again; where it goes (printable)."""
    if args.user:
        target = chat_target(args.url)
        assert password is not None
        login = ChatLogin(target, args.user, password, args.timeout, args.insecure)
        options = _connect_options(args, secure=target.secure, trace=trace)
        return (lambda: login.open(options)), True, f"{target.display} as {args.user}"
    options = _connect_options(args, trace=trace)
    reusable = url_credential(args.url) == "token"
    return (lambda: connect(args.url, **options)), reusable, where(args.url)


async def send_chat_command(args: argparse.Namespace, text: str, password: str) -> None:
    """``rawws send --user``: log in, join, check the welcome came first, say, wait for the ack, close with 1000.

    The chat's welcome comes with the 101, so checking for it costs nothing; a
    URL that names another WebSocket fails at once with ``NotTheChat`` (``/echo``
    echoes the join back) instead of timing out, and MESSAGE is not sent there.
    """
    open_ws, _, _ = _chat_opener(args, password)
    room = args.room or DEFAULT_ROOM
    ref = "send"
    ws = await open_ws()
    try:
        await ws.send(join_frame(room))
        try:
            async with asyncio.timeout(args.timeout):
                first = await ws.recv()
        except TimeoutError:
            raise NotTheChat(None) from None
        if not is_welcome(first):
            raise NotTheChat(first)
        async with asyncio.timeout(args.timeout):
            await ws.send(say_frame(room, text, ref))
            outcome = None
            while outcome is None:
                outcome = send_outcome(await ws.recv(), ref)
    finally:
        await ws.close()
    if isinstance(outcome, NotStored):
        raise ClientFailure(
            EXIT_NOT_STORED,
            f"message not stored in {room}: {outcome.message} ({outcome.code})",
        )
    _check_close(ws)


async def chat_protocol_command(args: argparse.Namespace, password: str | None) -> None:
    """``rawws chat --user`` (or with a token in the URL): rooms, commands, reconnects."""
    terminal = terminal_for()
    open_ws, reusable, place = _chat_opener(args, password, _trace_for(terminal))
    state = ChatState(
        args.room or DEFAULT_ROOM
    )  # before connecting: a bad room is a usage error
    backoff = Backoff(
        initial_s=args.reconnect_delay,
        cap_s=max(args.reconnect_max_delay, args.reconnect_delay),
        attempts=args.reconnect_attempts,
    )
    ws = await open_ws()
    compression = "compressed" if ws.compression else "uncompressed"
    print(
        f"connected to {place} ({compression}); /help lists commands, Ctrl-D or /quit to leave",
        flush=True,
    )
    end = await chat_session(
        ws, terminal, state, open_ws if reusable else None, backoff
    )
    if end.by_user:
        if end.not_stored:
            lines = "line was" if end.not_stored == 1 else "lines were"
            raise ClientFailure(
                EXIT_NOT_STORED,
                f"{end.not_stored} {lines} not stored (refused, or no ack before quitting)",
            )
        if end.close_timed_out:
            raise ClientFailure(
                EXIT_TIMEOUT, "timed out: the server did not answer our close frame"
            )
        return
    if end.gave_up is not None:
        raise ClientFailure(
            EXIT_CLOSED_WITH_ERROR,
            f"{closed_message(end.code, end.reason)}; gave up reconnecting after "
            f"{backoff.attempts} attempt{'s' if backoff.attempts != 1 else ''} ({end.gave_up})",
        )
    if end.code not in OK_CLOSE_CODES:
        raise ClientFailure(
            EXIT_CLOSED_WITH_ERROR, closed_message(end.code, end.reason)
        )
    print(visible(closed_message(end.code, end.reason)), file=sys.stderr)


def _check_close(ws: ClientConnection) -> None:
    if ws.close_timed_out:
        raise ClientFailure(
            EXIT_TIMEOUT, "timed out: the server did not answer our close frame"
        )
    if ws.close_code not in OK_CLOSE_CODES:
        raise ClientFailure(
            EXIT_CLOSED_WITH_ERROR, closed_message(ws.close_code, ws.close_reason)
        )


def run_client_command(
    coroutine: Coroutine[Any, Any, None], args: argparse.Namespace
) -> int:
    """Run a client command; every expected failure becomes one line on stderr (naming the fix) and its exit code."""
    try:
        try:
            asyncio.run(coroutine)
        except InvalidURI as exc:
            raise ClientFailure(EXIT_USAGE, mistakes.bad_url(exc, args)) from None
        except HandshakeRejected as exc:
            raise ClientFailure(EXIT_REFUSED, mistakes.refused(exc, args)) from None
        except InvalidHandshake as exc:
            raise ClientFailure(EXIT_REFUSED, mistakes.no_answer(exc, args)) from None
        except NotTheChat as exc:
            raise ClientFailure(
                EXIT_REFUSED, mistakes.not_the_chat(exc, args)
            ) from None
        except AuthFailed as exc:
            raise ClientFailure(
                EXIT_REFUSED, mistakes.login_refused(exc, args)
            ) from None
        except TimeoutError:
            raise ClientFailure(
                EXIT_TIMEOUT, f"timed out after {args.timeout:g}s ({where(args.url)})"
            ) from None
        except ConnectionClosed as exc:
            raise ClientFailure(
                EXIT_CLOSED_WITH_ERROR, closed_message(exc.code, exc.reason)
            ) from None
        except OSError as exc:  # ssl.SSLError included
            raise ClientFailure(
                EXIT_CANNOT_CONNECT, mistakes.cannot_connect(exc, args)
            ) from None
        except ValueError as exc:  # e.g. a header the handshake sets itself
            raise ClientFailure(EXIT_USAGE, str(exc)) from None
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except ClientFailure as failure:
        # One line, whatever the server put in it (a close reason, an error's message).
        print(f"rawws: {visible(failure.message)}", file=sys.stderr)
        return failure.code
    return EXIT_OK


def client_coroutine(args: argparse.Namespace) -> Coroutine[Any, Any, None]:
    """Check the arguments, read the message and the password (before any connection), pick the command."""
    chat_mode = speaks_chat(args)
    if args.room is not None and not chat_mode:
        raise ClientFailure(
            EXIT_USAGE, "--room needs --user (or a chat URL with a token)"
        )
    if args.user:
        try:
            chat_target(args.url)
        except InvalidURI as exc:
            raise ClientFailure(EXIT_USAGE, str(exc)) from None
    if args.command == "send":
        message = _message_from(args)
        if not chat_mode:
            return send_command(args, message)
        if args.binary or isinstance(message, bytes):
            raise ClientFailure(
                EXIT_USAGE,
                "--binary cannot be used with --user: chat messages are text",
            )
        problem = check_text(message)
        if problem:
            raise ClientFailure(EXIT_USAGE, problem)
        return send_chat_command(args, message, read_password(args.user))
    if not chat_mode:
        return chat_command(args)
    return chat_protocol_command(args, read_password(args.user) if args.user else None)
