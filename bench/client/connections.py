"""Opening many connections at once (upgraded, for WebSocket), and closing them: the base of every scenario."""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import random
import select
import socket
import time

from bench.client.common import (
    EPOLLIN,
    EPOLLOUT,
    GUID,
    Target,
    ValidationError,
    new_socket,
)
from bench.client.frames import CLOSE_1000


class Handshake:
    """The upgrade request, built once, and the check of its answer."""

    def __init__(self, target: Target) -> None:
        self.key = base64.b64encode(random.Random(13).randbytes(16))
        self.request = target.upgrade_request(self.key)
        self.accept = base64.b64encode(hashlib.sha1(self.key + GUID).digest())

    def check(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        if not lines[0].startswith(b"HTTP/1.1 101"):
            raise ValidationError(f"upgrade refused: {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
        if headers.get(b"sec-websocket-accept") != self.accept:
            raise ValidationError(
                f"bad Sec-WebSocket-Accept: {headers.get(b'sec-websocket-accept')!r}"
            )
        if b"sec-websocket-extensions" in headers:
            raise ValidationError(
                f"server negotiated an extension: {headers[b'sec-websocket-extensions']!r}"
            )


def check_close_reply(buf: bytes) -> None:
    if len(buf) < 4 or buf[0] != 0x88 or int.from_bytes(buf[2:4], "big") != 1000:
        raise ValidationError(
            f"expected a close frame with 1000, got {bytes(buf[:16])!r}"
        )


_CONNECTING, _UPGRADING, _CLOSING = 0, 1, 2


def open_connections(
    target: Target,
    count: int,
    concurrency: int,
    timeout_s: float,
    *,
    then_close: bool = False,
) -> tuple[list[socket.socket], float]:
    """Open ``count`` connections (upgraded, for WebSocket) with at most ``concurrency`` in progress.

    With ``then_close`` each one is closed again right away (close handshake,
    then wait for the server to drop TCP) and nothing is returned: that is
    one handshake cycle. Returns the sockets and the elapsed time.
    """
    hs = Handshake(target)
    ep = select.epoll()
    pending: dict[int, list] = {}
    opened: list[socket.socket] = []
    started = done = 0
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    try:
        while done < count:
            while started < count and len(pending) < concurrency:
                s = new_socket()
                s.setblocking(False)
                err = s.connect_ex((target.host, target.port))
                if err not in (0, errno.EINPROGRESS):
                    raise OSError(err, os.strerror(err))
                ep.register(s.fileno(), EPOLLOUT)
                pending[s.fileno()] = [s, _CONNECTING, bytearray()]
                started += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"opened {done} of {count} connections in {timeout_s:g}s"
                )
            for fd, _ev in ep.poll(min(remaining, 1.0)):
                entry = pending[fd]
                s = entry[0]
                if entry[1] == _CONNECTING:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, f"connect: {os.strerror(err)}")
                    if target.protocol == "floor":
                        if target.floor_hello:
                            s.send(target.floor_hello)
                        if then_close:
                            s.shutdown(socket.SHUT_WR)
                            entry[1] = _CLOSING
                            ep.modify(fd, EPOLLIN)
                        else:
                            ep.unregister(fd)
                            del pending[fd]
                            opened.append(s)
                            done += 1
                        continue
                    s.send(hs.request)
                    entry[1] = _UPGRADING
                    ep.modify(fd, EPOLLIN)
                    continue
                data = s.recv(4096)
                buf = entry[2]
                if entry[1] == _UPGRADING:
                    if not data:
                        raise ValidationError("server closed during the upgrade")
                    buf += data
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        continue
                    hs.check(bytes(buf[:end]))
                    if len(buf) > end + 4:
                        raise ValidationError(
                            "bytes after the 101 before any message was sent"
                        )
                    del buf[:]
                    if then_close:
                        s.send(CLOSE_1000)
                        entry[1] = _CLOSING
                    else:
                        ep.unregister(fd)
                        del pending[fd]
                        opened.append(s)
                        done += 1
                    continue
                # _CLOSING: the close frame back, then the server drops TCP
                if data:
                    buf += data
                    continue
                if target.protocol == "ws":
                    check_close_reply(bytes(buf))
                elif buf:
                    raise ValidationError("floor sent bytes on an empty connection")
                ep.unregister(fd)
                del pending[fd]
                s.close()
                done += 1
    except BaseException:
        for entry in pending.values():
            entry[0].close()
        for s in opened:
            s.close()
        raise
    finally:
        ep.close()
    return opened, time.perf_counter() - t0


def close_all(target: Target, socks: list[socket.socket]) -> None:
    """Say goodbye politely but without waiting (close frame, then FIN)."""
    for s in socks:
        try:
            if target.protocol == "ws":
                s.send(CLOSE_1000)
        except OSError:
            pass
        s.close()
