"""The one fixed load client: raw sockets, an epoll loop, pre-built frames, every reply checked.

Run as its own process by the harness (``python -m bench.client --port P --server-pid PID …``);
it prints one JSON object per finished scenario on stdout, so the harness can
show progress as it goes.

What it does, and what it does not:

* Client frames are built once, before anything is timed: binary messages
  (opcode 0x2), masked with a random key per frame as RFC 6455 requires of a
  client. A window holds ``W`` distinct messages (each payload starts with its
  index), so a reply that comes back out of order, twice or damaged is caught.
* The server's reply to a frame is known exactly (the same payload, unmasked,
  with a 2- or 4-byte header), so checking a reply is one byte comparison
  against the expected stream. Every reply is checked, in the timed phase too;
  before the timed phase a validation pass sends ``W`` messages per connection
  a few times, waits for every reply, and checks the count and that nothing
  more arrives.
* The floor speaks its own length-prefixed protocol (4-byte length + payload
  each way); "handshake" there is TCP connect + close.
* Server CPU time comes from ``/proc/<pid>/stat`` (utime+stime, all threads),
  server memory from ``VmRSS`` in ``/proc/<pid>/status``; the client's own CPU
  share is reported too, so a run where the client, not the server, was the
  limit can be seen (``client_cpu_util`` near 1.0).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import errno
import hashlib
import json
import os
import random
import resource
import select
import socket
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK")
RECV_SIZE = 256 * 1024
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
EPOLLIN, EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
EPOLLERR, EPOLLHUP = select.EPOLLERR, select.EPOLLHUP


class ValidationError(Exception):
    """A server answered something other than what an echo must answer."""


# -- /proc ---------------------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    """utime + stime of the whole process, in seconds (resolution 1/CLK_TCK)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        rest = f.read().rsplit(b")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def proc_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def system_busy_s() -> float:
    """CPU time spent busy by the whole machine (all CPUs, ``/proc/stat``), in seconds."""
    with open("/proc/stat", "rb") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLK_TCK


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_quiet(pid: int, quiet_s: float = 0.3, limit_s: float = 10.0) -> float:
    """Wait until the server has used no CPU for ``quiet_s`` (at most ``limit_s``); returns the wait."""
    start = time.monotonic()
    last = proc_cpu_s(pid)
    still_since = time.monotonic()
    while time.monotonic() - start < limit_s:
        time.sleep(0.05)
        now = proc_cpu_s(pid)
        if now != last:
            last = now
            still_since = time.monotonic()
        elif time.monotonic() - still_since >= quiet_s:
            break
    return time.monotonic() - start


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- frames --------------------------------------------------------------------------


def ws_client_frame(payload: bytes, opcode: int = 0x2, rng: random.Random | None = None) -> bytes:
    """One masked, unfragmented client frame (RFC 6455 §5.2)."""
    rng = rng or random.Random()
    mask = rng.randbytes(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    key = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big") if n else b""
    return head + mask + masked


def ws_server_frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """What a server sends for that message: the same payload, unmasked."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
    return head + payload


def floor_frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


CLOSE_1000 = ws_client_frame((1000).to_bytes(2, "big"), opcode=0x8, rng=random.Random(7))


def payloads(size: int, count: int, seed: int) -> list[bytes]:
    """``count`` distinct payloads of ``size`` bytes; each starts with its index."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        tag = f"#{i:05d}:".encode()
        body = rng.randbytes(max(0, size - len(tag)))
        out.append((tag + body)[:size])
    return out


def prebuilt_frames(target: Target, size: int, count: int, seed: int) -> tuple[list[bytes], list[bytes]]:
    """``count`` distinct requests (masked client frames, or floor frames) and the exact replies expected.

    All requests have one length and all replies another, so a stream of them is checked by offset.
    """
    msgs = payloads(size, count, seed)
    rng = random.Random(seed + 1)
    if target.protocol == "ws":
        requests = [ws_client_frame(m, rng=rng) for m in msgs]
        replies = [ws_server_frame(m) for m in msgs]
    else:
        requests = [floor_frame(m) for m in msgs]
        replies = list(requests)
    assert len({len(r) for r in requests}) == 1 and len({len(r) for r in replies}) == 1
    return requests, replies


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    protocol: str  # "ws" or "floor"
    path: str = "/echo"

    @property
    def floor_hello(self) -> bytes:
        """What a floor connection sends first: ``FANO`` joins the broadcast group (its stand-in for ``/fanout``)."""
        return b"FANO" if self.path == "/fanout" else b""

    def upgrade_request(self, key: bytes) -> bytes:
        return (
            f"GET {self.path} HTTP/1.1\r\n"
            f"Host: {self.host}:{self.port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "\r\n"
        ).encode()


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
            raise ValidationError(f"bad Sec-WebSocket-Accept: {headers.get(b'sec-websocket-accept')!r}")
        if b"sec-websocket-extensions" in headers:
            raise ValidationError(f"server negotiated an extension: {headers[b'sec-websocket-extensions']!r}")


def new_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def check_close_reply(buf: bytes) -> None:
    if len(buf) < 4 or buf[0] != 0x88 or int.from_bytes(buf[2:4], "big") != 1000:
        raise ValidationError(f"expected a close frame with 1000, got {bytes(buf[:16])!r}")


# -- opening many connections (memory test, concurrent handshakes) --------------------


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
                raise TimeoutError(f"opened {done} of {count} connections in {timeout_s:g}s")
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
                        raise ValidationError("bytes after the 101 before any message was sent")
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


def handshakes_sequential(target: Target, count: int, timeout_s: float) -> float:
    """``count`` connect + upgrade + close cycles, one at a time; returns the elapsed time."""
    hs = Handshake(target)
    deadline = time.monotonic() + timeout_s
    t0 = time.perf_counter()
    for _ in range(count):
        if time.monotonic() > deadline:
            raise TimeoutError("sequential handshakes took too long")
        s = new_socket()
        s.settimeout(5.0)
        try:
            s.connect((target.host, target.port))
            if target.protocol == "ws":
                s.sendall(hs.request)
                buf = b""
                while b"\r\n\r\n" not in buf:
                    data = s.recv(4096)
                    if not data:
                        raise ValidationError("server closed during the upgrade")
                    buf += data
                head, _, rest = buf.partition(b"\r\n\r\n")
                hs.check(head)
                if rest:
                    raise ValidationError("bytes after the 101")
                s.sendall(CLOSE_1000)
            else:
                s.shutdown(socket.SHUT_WR)
            buf = b""
            while True:
                data = s.recv(4096)
                if not data:
                    break
                buf += data
            if target.protocol == "ws":
                check_close_reply(buf)
            elif buf:
                raise ValidationError("floor sent bytes on an empty connection")
        finally:
            s.close()
    return time.perf_counter() - t0


# -- echo --------------------------------------------------------------------------


class EchoLoad:
    """``len(socks)`` connections, each with up to ``window`` messages in flight (a sliding window).

    The messages of a window are distinct; the one whose reply just came back
    is sent again, so the stream each connection receives is the ring of
    ``window`` replies, over and over, and checking it is a byte comparison.
    """

    def __init__(self, target: Target, socks: list[socket.socket], size: int, window: int, seed: int) -> None:
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
        idx, outstanding, rep_len, req_len, window = self.idx, self.outstanding, self.rep_len, self.req_len, self.window
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
                        raise ValidationError(f"server closed connection {i} in the middle of the load")
                    buf = inbuf[i]
                    buf += data
                    k = len(buf) // rep_len
                    if not k:
                        continue
                    if k > outstanding[i]:
                        raise ValidationError(f"connection {i}: {k} replies for {outstanding[i]} messages")
                    n = k * rep_len
                    a = idx[i] * rep_len
                    if not buf.startswith(exp2[a : a + n]):  # a memcmp, no copies
                        raise ValidationError(f"connection {i}: reply does not match the message sent")
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
            raise ValidationError(f"{self.sent - self.received} replies missing after {timeout_s:g}s")
        extra = [i for i, b in enumerate(self.inbuf) if b]
        for fd, _ev in self.ep.poll(0.05):
            extra.append(self.index[fd])
        if extra:
            raise ValidationError(f"unexpected bytes after the last reply on connection(s) {sorted(set(extra))[:5]}")


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
    socks, _ = open_connections(target, connections, min(connections, 50), timeout_s=30.0)
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


def rtt_benchmark(target: Target, *, size: int, warmup: int, count: int, timeout_s: float) -> dict:
    """One connection, one message in flight: ``count`` timed round trips."""
    socks, _ = open_connections(target, 1, 1, timeout_s=10.0)
    s = socks[0]
    s.setblocking(True)
    s.settimeout(5.0)
    requests, replies = prebuilt_frames(target, size, 16, seed=99)
    rep_len = len(replies[0])
    samples: list[int] = []
    deadline = time.monotonic() + timeout_s
    perf = time.perf_counter_ns
    try:
        for n in range(warmup + count):
            j = n % len(requests)
            t0 = perf()
            s.sendall(requests[j])
            buf = s.recv(RECV_SIZE)
            while len(buf) < rep_len:
                more = s.recv(RECV_SIZE)
                if not more:
                    raise ValidationError("server closed during the round-trip test")
                buf += more
            t1 = perf()
            if buf != replies[j]:
                raise ValidationError("round-trip reply does not match")
            if n >= warmup:
                samples.append(t1 - t0)
            if time.monotonic() > deadline:
                break
    finally:
        close_all(target, socks)
    samples.sort()
    return {
        "size": size,
        "round_trips": len(samples),
        "p50_us": percentile(samples, 50) / 1e3,
        "p99_us": percentile(samples, 99) / 1e3,
        "mean_us": statistics.fmean(samples) / 1e3,
    }


def percentile(sorted_values: list[int] | list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), int(-(-p * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def handshake_benchmark(target: Target, pid: int, *, sequential: int, concurrent: int, concurrency: int) -> dict:
    handshakes_sequential(target, min(20, sequential), timeout_s=30.0)  # warm-up
    c0 = proc_cpu_s(pid)
    seq_s = handshakes_sequential(target, sequential, timeout_s=120.0)
    c1 = proc_cpu_s(pid)
    _, conc_s = open_connections(target, concurrent, concurrency, timeout_s=120.0, then_close=True)
    c2 = proc_cpu_s(pid)
    return {
        "sequential": sequential,
        "sequential_per_s": sequential / seq_s,
        "concurrent": concurrent,
        "concurrency": concurrency,
        "concurrent_per_s": concurrent / conc_s,
        "server_cpu_us_per_handshake_seq": (c1 - c0) / sequential * 1e6,
        "server_cpu_us_per_handshake_conc": (c2 - c1) / concurrent * 1e6,
    }


def memory_benchmark(target: Target, pid: int, *, steps: list[int], concurrency: int) -> dict:
    """Server RSS with N idle connections open, minus the RSS before, per connection."""
    warm, _ = open_connections(target, 50, 25, timeout_s=30.0)  # first-use allocations, not per-connection
    close_all(target, warm)
    wait_quiet(pid)
    baseline = proc_rss_kib(pid)
    socks: list[socket.socket] = []
    out: dict = {"baseline_rss_kib": baseline, "steps": []}
    try:
        for n in steps:
            more, elapsed = open_connections(target, n - len(socks), concurrency, timeout_s=180.0)
            socks += more
            wait_quiet(pid)
            rss = proc_rss_kib(pid)
            out["steps"].append(
                {
                    "connections": n,
                    "rss_kib": rss,
                    "per_connection_kib": (rss - baseline) / n,
                    "open_s": elapsed,
                }
            )
    finally:
        close_all(target, socks)
    wait_quiet(pid, limit_s=20.0)
    return out


# -- fan-out -------------------------------------------------------------------------


class FanoutLoad:
    """One sender and ``len(receivers)`` receivers on the broadcast endpoint; every copy is checked.

    The ``k`` messages are distinct (each payload starts with its index) and the
    sender sends them in that order, over and over, so every receiver must see
    exactly that ring, in order: checking what arrived is one byte comparison
    against the expected stream. The sender must receive nothing (a broadcast
    does not go back to its sender). Keepalive pings are answered and skipped;
    a close frame or anything else is an error.
    """

    def __init__(self, target: Target, sender: socket.socket, receivers: list[socket.socket], size: int, k: int, seed: int) -> None:
        self.ws = target.protocol == "ws"
        requests, replies = prebuilt_frames(target, size, k, seed)
        self.req_len = len(requests[0])
        self.rep_len = len(replies[0])
        self.k = k
        self.req2 = memoryview(b"".join(requests) * 2)
        self.exp2 = memoryview(b"".join(replies) * 2)
        self.sender = sender
        self.receivers = receivers
        n = len(receivers)
        self.got = [0] * n  # messages received and checked, per receiver
        self.inbuf = [bytearray() for _ in range(n)]
        self.sender_buf = bytearray()
        self.sent = 0
        self.pong_rng = random.Random(seed + 2)
        self.ep = select.epoll()
        self.index: dict[int, int] = {}
        for i, s in enumerate(receivers):
            s.setblocking(False)
            self.index[s.fileno()] = i
            self.ep.register(s.fileno(), EPOLLIN)
        sender.settimeout(10.0)  # sendall blocks at most this long; reads happen only when epoll says so
        self.index[sender.fileno()] = -1
        self.ep.register(sender.fileno(), EPOLLIN)

    def close(self) -> None:
        self.ep.close()

    @property
    def delivered(self) -> int:
        return self.sent * len(self.receivers)

    def send(self, count: int) -> None:
        """The next ``count`` messages of the ring, back to back, in one write."""
        j = self.sent % self.k
        self.sender.sendall(self.req2[j * self.req_len : (j + count) * self.req_len])
        self.sent += count

    def wait_all(self, deadline: float) -> None:
        """Until every receiver has every message sent so far (``TimeoutError`` at the monotonic ``deadline``)."""
        self._pump(deadline, until_complete=True)

    def expect_nothing(self, wait_s: float) -> None:
        """Check that nothing but what was due arrives for ``wait_s`` seconds and no partial frame is left."""
        self._pump(time.monotonic() + wait_s, until_complete=False)
        partial = [i for i, b in enumerate(self.inbuf) if b]
        if partial:
            i = partial[0]
            raise ValidationError(f"receiver {i}: {len(self.inbuf[i])} stray bytes after the last message {bytes(self.inbuf[i][:12])!r}")

    def _pump(self, deadline: float, *, until_complete: bool) -> None:
        ep, index, receivers, inbuf, got = self.ep, self.index, self.receivers, self.inbuf, self.got
        exp2, rep_len, k = self.exp2, self.rep_len, self.k
        monotonic = time.monotonic
        target = self.sent
        behind = sum(1 for g in got if g < target)
        while behind or not until_complete:
            remaining = deadline - monotonic()
            if remaining <= 0:
                if not until_complete:
                    return
                short = [i for i, g in enumerate(got) if g < target]
                raise TimeoutError(
                    f"{len(short)} of {len(receivers)} receivers still short of the {target} messages sent "
                    f"(receiver {short[0]} has {got[short[0]]})"
                )
            for fd, _ev in ep.poll(min(remaining, 0.5)):
                i = index[fd]
                if i < 0:
                    self._sender_readable()
                    continue
                data = receivers[i].recv(RECV_SIZE)
                if not data:
                    left = f"; unread {bytes(inbuf[i][:16])!r}" if inbuf[i] else ""
                    raise ValidationError(f"server closed receiver {i} ({got[i]} of {target} messages received{left})")
                buf = inbuf[i]
                buf += data
                m = len(buf) // rep_len
                if not m:
                    continue
                g = got[i]
                n = m * rep_len
                a = (g % k) * rep_len
                if g + m <= target and m <= k and buf.startswith(exp2[a : a + n]):  # a memcmp, no copies
                    del buf[:n]
                    got[i] = g + m
                else:
                    self._check_slowly(i, target)
                if g < target <= got[i]:
                    behind -= 1

    def _check_slowly(self, i: int, target: int) -> None:
        """Frame by frame: answer and skip pings, reject anything not expected."""
        buf, got, rep_len = self.inbuf[i], self.got, self.rep_len
        while buf:
            if self.ws:
                control = self._control_frame(buf, self.receivers[i], f"receiver {i}")
                if control > 0:
                    continue
                if control < 0:
                    return
            if len(buf) < rep_len:
                return
            if got[i] >= target:
                raise ValidationError(f"receiver {i}: more than the {target} messages sent ({bytes(buf[:12])!r})")
            a = (got[i] % self.k) * rep_len
            if buf[:rep_len] != self.exp2[a : a + rep_len]:
                raise ValidationError(
                    f"receiver {i}: message {got[i]} is not the one sent ({bytes(buf[:12])!r}; "
                    f"expected {bytes(self.exp2[a : a + 12])!r})"
                )
            del buf[:rep_len]
            got[i] += 1

    def _sender_readable(self) -> None:
        data = self.sender.recv(RECV_SIZE)
        if not data:
            raise ValidationError("server closed the sender's connection")
        buf = self.sender_buf
        buf += data
        while buf:
            control = self._control_frame(buf, self.sender, "sender") if self.ws else 0
            if control < 0:
                return
            if control == 0:
                raise ValidationError(f"the sender received {bytes(buf[:12])!r}: a broadcast must not go back to its sender")

    def _control_frame(self, buf: bytearray, sock: socket.socket, who: str) -> int:
        """A ping at the front of ``buf`` is answered and removed (1); a close frame is an error.

        0: no control frame there; -1: the start of one, wait for the rest.
        """
        if buf[0] not in (0x89, 0x88):
            return 0
        if len(buf) < 2 or len(buf) < 2 + (buf[1] & 0x7F):
            return -1
        n = buf[1] & 0x7F
        if buf[0] == 0x88:
            code = int.from_bytes(buf[2:4], "big") if n >= 2 else None
            raise ValidationError(f"server closed {who} with a close frame ({code} {bytes(buf[4 : 2 + n])!r})")
        pong = ws_client_frame(bytes(buf[2 : 2 + n]), opcode=0xA, rng=self.pong_rng)
        try:
            sock.send(pong)
        except BlockingIOError:
            pass
        del buf[: 2 + n]
        return 1


def fanout_phase(load: FanoutLoad, pid: int, *, burst: int, duration_s: float, max_deliveries: int, timeout_s: float) -> dict:
    """Send ``burst`` messages back to back, wait until every receiver has them all, again until ``duration_s``.

    ``burst=1`` is lock-step: one message, wait until all receivers have it, the next.
    """
    n = len(load.receivers)
    max_messages = max(burst, max_deliveries // n)
    deadline = time.monotonic() + timeout_s
    perf_ns = time.perf_counter_ns
    samples: list[int] = []
    m0, c0, s0, b0 = load.sent, proc_cpu_s(pid), self_cpu_s(), system_busy_s()
    t0 = time.perf_counter()
    while True:
        ts = perf_ns()
        load.send(burst)
        load.wait_all(deadline)
        samples.append(perf_ns() - ts)
        if time.perf_counter() - t0 >= duration_s or load.sent - m0 + burst > max_messages:
            break
    elapsed = time.perf_counter() - t0
    m1, c1, s1, b1 = load.sent, proc_cpu_s(pid), self_cpu_s(), system_busy_s()
    messages = m1 - m0
    deliveries = messages * n
    server_cpu = c1 - c0
    samples.sort()
    return {
        "messages": messages,
        "deliveries": deliveries,
        "cycles": len(samples),
        "elapsed_s": elapsed,
        "deliveries_per_s": deliveries / elapsed,
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_delivery": server_cpu / deliveries * 1e6,
        "server_cpu_util": server_cpu / elapsed,
        "client_cpu_util": (s1 - s0) / elapsed,
        "other_cpu_cores": max(0.0, (b1 - b0) - server_cpu - (s1 - s0)) / elapsed,
        # send of the first message of a cycle → the last receiver has the last one
        "cycle_p50_us": percentile(samples, 50) / 1e3,
        "cycle_p99_us": percentile(samples, 99) / 1e3,
    }


def fanout_benchmark(
    target: Target,
    pid: int,
    *,
    receivers: int,
    burst: int,
    size: int,
    duration_s: float,
    max_deliveries: int,
    validation_bursts: int = 2,
    timeout_s: float = 60.0,
) -> dict:
    """Broadcast from one sender to ``receivers`` connections on ``/fanout``: burst, then lock-step.

    Everyone (receivers first, the sender last) is connected and upgraded, and
    the server left to settle (no CPU used for 0.2 s) so that every connection
    is registered before anything is sent. Validation: ``validation_bursts``
    bursts, each awaited on every receiver and checked, then nothing more may
    arrive. Burst: ``burst`` messages back to back, wait until every receiver
    has all of them, repeated for ``duration_s``. Lock-step: one message, wait
    until every receiver has it, repeated for ``duration_s``. Every copy is
    checked in both timed phases too.
    """
    fan = dataclasses.replace(target, path="/fanout")
    socks, open_s = open_connections(fan, receivers, min(receivers, 100), timeout_s=timeout_s)
    try:
        more, _ = open_connections(fan, 1, 1, timeout_s=10.0)
    except BaseException:
        close_all(fan, socks)
        raise
    socks += more
    load = FanoutLoad(fan, socks[-1], socks[:-1], size, burst, seed=1000 + receivers)
    try:
        wait_quiet(pid, quiet_s=0.2)
        deadline = time.monotonic() + timeout_s
        for _ in range(validation_bursts):
            load.send(burst)
            load.wait_all(deadline)
        load.expect_nothing(0.05)
        validated = load.delivered
        burst_phase = fanout_phase(load, pid, burst=burst, duration_s=duration_s, max_deliveries=max_deliveries, timeout_s=timeout_s)
        load.expect_nothing(0.02)
        lockstep_phase = fanout_phase(load, pid, burst=1, duration_s=duration_s, max_deliveries=max_deliveries, timeout_s=timeout_s)
        load.expect_nothing(0.05)
    finally:
        load.close()
        close_all(fan, socks)
    return {
        "receivers": receivers,
        "size": size,
        "burst_messages": burst,
        "open_s": open_s,
        "validated_deliveries": validated,
        "burst": burst_phase,
        "lockstep": lockstep_phase,
        "total_deliveries_checked": load.delivered,
    }


# -- main -----------------------------------------------------------------------------


SCENARIOS = ("memory", "echo64", "echo16k", "rtt", "handshakes", "fanout")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--protocol", choices=["ws", "floor"], default="ws")
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--params", default="{}", help="JSON object of counts (see bench/harness.py PROFILES)")
    args = parser.parse_args(argv)
    p = json.loads(args.params)
    raise_nofile()
    target = Target(args.host, args.port, args.protocol)
    pid = args.server_pid

    def emit(name: str, run: Callable[[], dict], **extra: object) -> None:
        t0 = time.perf_counter()
        try:
            result = run()
            result["ok"] = True
        except (ValidationError, OSError, TimeoutError) as exc:
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        result.update(extra)
        result["scenario"] = name
        result["wall_s"] = time.perf_counter() - t0
        print(json.dumps(result), flush=True)
        wait_quiet(pid)

    for name in args.scenarios.split(","):
        if name == "memory":
            emit(name, lambda: memory_benchmark(target, pid, steps=p["memory_steps"], concurrency=p["memory_concurrency"]))
        elif name in ("echo64", "echo16k"):
            size = 64 if name == "echo64" else 16 * 1024
            emit(
                name,
                lambda: echo_benchmark(
                    target,
                    pid,
                    size=size,
                    connections=p[f"{name}_connections"],
                    window=p[f"{name}_window"],
                    warmup_s=p["warmup_s"],
                    duration_s=p["duration_s"],
                    max_messages=p[f"{name}_max_messages"],
                ),
            )
        elif name == "rtt":
            emit(name, lambda: rtt_benchmark(target, size=64, warmup=p["rtt_warmup"], count=p["rtt_count"], timeout_s=30.0))
        elif name == "handshakes":
            emit(
                name,
                lambda: handshake_benchmark(
                    target,
                    pid,
                    sequential=p["hs_sequential"],
                    concurrent=p["hs_concurrent"],
                    concurrency=p["hs_concurrency"],
                ),
            )
        elif name == "fanout":
            # one line per receiver count, so a failure at 1,000 keeps the figures at 100
            for n, burst in zip(p["fanout_receivers"], p["fanout_burst"], strict=True):
                emit(
                    name,
                    lambda n=n, burst=burst: fanout_benchmark(
                        target,
                        pid,
                        receivers=n,
                        burst=burst,
                        size=p["fanout_size"],
                        duration_s=p["fanout_duration_s"],
                        max_deliveries=p["fanout_max_deliveries"],
                    ),
                    receivers=n,
                )
        else:
            parser.error(f"unknown scenario {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
