"""What every scenario of the load client shares: the target, ``/proc`` readings, the validation error."""

from __future__ import annotations

import os
import resource
import select
import socket
import time
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK")
RECV_SIZE = 256 * 1024
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
EPOLLIN, EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
EPOLLERR, EPOLLHUP = select.EPOLLERR, select.EPOLLHUP


class ValidationError(Exception):
    """A server answered something other than what an echo must answer."""


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


def percentile(sorted_values: list[int] | list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), int(-(-p * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


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


def new_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s
