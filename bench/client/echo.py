"""The echo scenario: many connections, a sliding window of distinct messages each, every reply checked."""

from __future__ import annotations

import select
import socket
import time

from bench.client.common import (
    EPOLLERR,
    EPOLLHUP,
    EPOLLIN,
    EPOLLOUT,
    RECV_SIZE,
    Target,
    ValidationError,
    proc_cpu_s,
    self_cpu_s,
    system_busy_s,
)
from bench.client.connections import close_all, open_connections
from bench.client.frames import prebuilt_frames


class EchoLoad:
    """``len(socks)`` connections, each with up to ``window`` messages in flight (a sliding window).

    The messages of a window are distinct; the one whose reply just came back
    is sent again, so the stream each connection receives is the ring of
    ``window`` replies, over and over, and checking it is a byte comparison.
    """

    def __init__(
        self,
        target: Target,
        socks: list[socket.socket],
        size: int,
        window: int,
        seed: int,
    ) -> None:
        self.socks = socks
        self.window = window
        requests, replies = prebuilt_frames(target, size, window, seed)
        self.req_len = len(requests[0])
        self.rep_len = len(replies[0])
        self.req2 = memoryview(b"".join(requests) * 2)
        self.exp2 = b"".join(replies) * 2
        n = len(socks)
        self.idx = [0] * n
        self.outstanding = [0] * n
        self.inbuf = [bytearray() for _ in range(n)]
        self.out: list[bytes | None] = [None] * n
        self.sent = 0
        self.received = 0
        self.ep = select.epoll()
        self.index = {}
        for i, s in enumerate(socks):
            s.setblocking(False)
            self.index[s.fileno()] = i
            self.ep.register(s.fileno(), EPOLLIN)

    def close(self) -> None:
        self.ep.close()

    def _send(self, i: int, start: int, k: int) -> None:
        data = self.req2[start * self.req_len : (start + k) * self.req_len]
        pending = self.out[i]
        if pending is not None:
            self.out[i] = pending + bytes(data)
            return
        s = self.socks[i]
        try:
            n = s.send(data)
        except BlockingIOError:
            n = 0
        if n < len(data):
            self.out[i] = bytes(data[n:])
            self.ep.modify(s.fileno(), EPOLLIN | EPOLLOUT)

    def _flush(self, i: int) -> None:
        pending = self.out[i]
        s = self.socks[i]
        if pending is None:
            self.ep.modify(s.fileno(), EPOLLIN)
            return
        try:
            n = s.send(pending)
        except BlockingIOError:
            return
        if n < len(pending):
            self.out[i] = pending[n:]
        else:
            self.out[i] = None
            self.ep.modify(s.fileno(), EPOLLIN)

    def fill(self) -> None:
        """Top every connection up to a full window."""
        for i in range(len(self.socks)):
            k = self.window - self.outstanding[i]
            if k > 0:
                start = (self.idx[i] + self.outstanding[i]) % self.window
                self._send(i, start, k)
                self.outstanding[i] += k
                self.sent += k

    def pump(self, until: float, max_received: int | None, sending: bool) -> None:
        """Handle replies until the monotonic time ``until``, ``max_received`` replies, or (not sending) none left."""
        ep, index, socks, inbuf = self.ep, self.index, self.socks, self.inbuf
        idx, outstanding, rep_len, req_len, window = (
            self.idx,
            self.outstanding,
            self.rep_len,
            self.req_len,
            self.window,
        )
        exp2, req2 = memoryview(self.exp2), self.req2
        monotonic = time.monotonic
        received = self.received
        sent = self.sent
        limit = max_received if max_received is not None else 1 << 62
        try:
            while received < limit:
                if not sending and sent == received:
                    return
                remaining = until - monotonic()
                if remaining <= 0:
                    return
                for fd, ev in ep.poll(min(remaining, 0.5)):
                    i = index[fd]
                    if ev & EPOLLOUT:
                        self._flush(i)
                    if not ev & (EPOLLIN | EPOLLERR | EPOLLHUP):
                        continue
                    data = socks[i].recv(RECV_SIZE)
                    if not data:
                        raise ValidationError(
                            f"server closed connection {i} in the middle of the load"
                        )
                    buf = inbuf[i]
                    buf += data
                    k = len(buf) // rep_len
                    if not k:
                        continue
                    if k > outstanding[i]:
                        raise ValidationError(
                            f"connection {i}: {k} replies for {outstanding[i]} messages"
                        )
                    n = k * rep_len
                    a = idx[i] * rep_len
                    if not buf.startswith(exp2[a : a + n]):  # a memcmp, no copies
                        raise ValidationError(
                            f"connection {i}: reply does not match the message sent"
                        )
                    del buf[:n]
                    start = idx[i]
                    idx[i] = (start + k) % window
                    outstanding[i] -= k
                    received += k
                    if sending:
                        data = req2[start * req_len : (start + k) * req_len]
                        if self.out[i] is None:
                            s = socks[i]
                            try:
                                w = s.send(data)
                            except BlockingIOError:
                                w = 0
                            if w < len(data):
                                self.out[i] = bytes(data[w:])
                                ep.modify(fd, EPOLLIN | EPOLLOUT)
                        else:
                            self.out[i] = self.out[i] + bytes(data)  # type: ignore[operator]
                        outstanding[i] += k
                        sent += k
        finally:
            self.received = received
            self.sent = sent

    def drain(self, timeout_s: float) -> None:
        """Stop sending, take every reply still due, and check that nothing else comes."""
        self.pump(time.monotonic() + timeout_s, None, sending=False)
        if self.sent != self.received:
            raise ValidationError(
                f"{self.sent - self.received} replies missing after {timeout_s:g}s"
            )
        extra = [i for i, b in enumerate(self.inbuf) if b]
        for fd, _ev in self.ep.poll(0.05):
            extra.append(self.index[fd])
        if extra:
            raise ValidationError(
                f"unexpected bytes after the last reply on connection(s) {sorted(set(extra))[:5]}"
            )


def echo_benchmark(
    target: Target,
    pid: int,
    *,
    size: int,
    connections: int,
    window: int,
    warmup_s: float,
    duration_s: float,
    max_messages: int,
    validation_windows: int = 3,
) -> dict:
    socks, _ = open_connections(
        target, connections, min(connections, 50), timeout_s=30.0
    )
    load = EchoLoad(target, socks, size, window, seed=size)
    try:
        # Validation before anything is timed: whole windows, every reply awaited, counted, compared.
        for _ in range(validation_windows):
            load.fill()
            load.drain(timeout_s=10.0)
        validated = load.received
        # Warm-up, then the timed phase: a sliding window on every connection.
        load.fill()
        load.pump(time.monotonic() + warmup_s, None, sending=True)
        r0, c0, s0, b0 = load.received, proc_cpu_s(pid), self_cpu_s(), system_busy_s()
        t0 = time.perf_counter()
        load.pump(time.monotonic() + duration_s, r0 + max_messages, sending=True)
        elapsed = time.perf_counter() - t0
        r1, c1, s1, b1 = load.received, proc_cpu_s(pid), self_cpu_s(), system_busy_s()
        load.drain(timeout_s=10.0)
    finally:
        load.close()
        close_all(target, socks)
    msgs = r1 - r0
    server_cpu = c1 - c0
    return {
        "size": size,
        "connections": connections,
        "window": window,
        "validated_replies": validated,
        "messages": msgs,
        "elapsed_s": elapsed,
        "msgs_per_s": msgs / elapsed,
        "MB_per_s": msgs * size / elapsed / 1e6,
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_msg": server_cpu / msgs * 1e6 if msgs else None,
        "server_cpu_util": server_cpu / elapsed,
        "client_cpu_util": (s1 - s0) / elapsed,
        # everything else the machine did meanwhile, in cores (other processes, and kernel work not charged to either)
        "other_cpu_cores": max(0.0, (b1 - b0) - server_cpu - (s1 - s0)) / elapsed,
        "total_replies_checked": load.received,
    }
