"""The handshake scenario: connect + upgrade + close cycles, one at a time and many at once."""

from __future__ import annotations

import socket
import time

from bench.client.common import Target, ValidationError, new_socket, proc_cpu_s
from bench.client.connections import Handshake, check_close_reply, open_connections
from bench.client.frames import CLOSE_1000


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


def handshake_benchmark(
    target: Target, pid: int, *, sequential: int, concurrent: int, concurrency: int
) -> dict:
    handshakes_sequential(target, min(20, sequential), timeout_s=30.0)  # warm-up
    c0 = proc_cpu_s(pid)
    seq_s = handshakes_sequential(target, sequential, timeout_s=120.0)
    c1 = proc_cpu_s(pid)
    _, conc_s = open_connections(
        target, concurrent, concurrency, timeout_s=120.0, then_close=True
    )
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
