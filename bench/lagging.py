"""`python -m bench.lagging`: what readers that fall behind a broadcast, then catch up, cost the rawws server.

N receivers (``SO_RCVBUF`` 16 KiB, so the kernel absorbs little) stop
reading while one sender broadcasts M messages of 16 KiB on ``/fanout`` (1 MiB
behind each with the defaults, under the 4 MiB outbox bound). Once the server
is idle, with everything queued, its RSS is read ("queued") and its peak
(``VmHWM``) reset to it; then every receiver reads everything, checked byte for
byte and in order, and the peak is read again ("catching up"). Each round
starts the server fresh, the way ``python -m bench`` starts it. Run it in a
checkout of another commit to compare; the numbers of the last comparison are
in ``bench/LIMITS.md`` (memory in fan-out bursts).
"""

from __future__ import annotations

import argparse
import base64
import os
import select
import socket
import statistics
import tempfile
import time

from bench.client.common import proc_rss_kib, raise_nofile, wait_quiet
from bench.client.fanout import peak_rss_kib, reset_peak_rss
from bench.client.frames import ws_client_frame, ws_server_frame
from bench.harness import REPO
from bench.servers.registry import HOST, ServerSpec
from testkit import free_port, start, stop, wait_for_port

MESSAGE = 16 * 1024
RECEIVE_BUFFER = 16 * 1024


def upgraded(port: int, rcvbuf: int = 0) -> socket.socket:
    """A socket upgraded on ``/fanout``; ``rcvbuf`` set before connecting, so the window stays small."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10.0)
    sock.connect((HOST, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /fanout HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while (
        b"\r\n\r\n" not in head
    ):  # byte by byte: nothing after the head may be read here
        byte = sock.recv(1)
        if not byte:
            raise ConnectionError("closed during the upgrade")
        head += byte
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise ConnectionError(f"not upgraded: {head[:80]!r}")
    return sock


def catch_up(receivers: list[socket.socket], expected: bytes, timeout_s: float) -> None:
    """Read every receiver until it holds exactly ``expected``."""
    ep = select.epoll()
    socks = {s.fileno(): s for s in receivers}
    bufs = {fd: bytearray() for fd in socks}
    for fd, s in socks.items():
        s.setblocking(False)
        ep.register(fd, select.EPOLLIN)
    deadline = time.monotonic() + timeout_s
    left = len(receivers)
    try:
        while left:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{left} receivers had not caught up")
            for fd, _ in ep.poll(1.0):
                data = socks[fd].recv(1 << 20)
                if not data:
                    raise ConnectionError("the server closed a receiver")
                buf = bufs[fd]
                buf += data
                if len(buf) > len(expected):
                    raise ValueError("more than was sent")
                if len(buf) == len(expected):
                    if buf != expected:
                        raise ValueError("damaged or out of order")
                    ep.unregister(fd)
                    left -= 1
    finally:
        ep.close()


def one_round(receivers: int, messages: int) -> dict[str, float]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="rawws-lagging-") as data_dir:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc = start(
            ServerSpec("rawws", "asyncio").command(port, data_dir), cwd=REPO, env=env
        )
        socks: list[socket.socket] = []
        try:
            wait_for_port(port, process=proc, name="rawws")
            socks = [upgraded(port, RECEIVE_BUFFER) for _ in range(receivers)]
            sender = upgraded(port)
            socks.append(sender)
            wait_quiet(proc.pid, quiet_s=0.3)
            idle = proc_rss_kib(proc.pid)
            payloads = [i.to_bytes(4, "big") * (MESSAGE // 4) for i in range(messages)]
            sender.sendall(b"".join(ws_client_frame(p) for p in payloads))
            wait_quiet(proc.pid, quiet_s=0.5)
            reset_peak_rss(proc.pid)
            queued = proc_rss_kib(proc.pid)
            t0 = time.perf_counter()
            catch_up(socks[:-1], b"".join(ws_server_frame(p) for p in payloads), 60.0)
            elapsed = time.perf_counter() - t0
            peak = peak_rss_kib(proc.pid)
        finally:
            for s in socks:
                s.close()
            stop(proc)
    return {
        "idle_mb": idle / 1024,
        "queued_mb": queued / 1024,
        "peak_mb": peak / 1024,
        "catch_up_s": elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.lagging", description=__doc__
    )
    parser.add_argument("--receivers", type=int, default=200)
    parser.add_argument("--messages", type=int, default=64, help="of 16 KiB each")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    raise_nofile()
    runs = []
    for r in range(1, args.rounds + 1):
        run = one_round(args.receivers, args.messages)
        runs.append(run)
        print(
            f"round {r}: idle {run['idle_mb']:.1f} MB, queued {run['queued_mb']:.1f} MB, "
            f"peak catching up {run['peak_mb']:.1f} MB, caught up in {run['catch_up_s']:.2f} s",
            flush=True,
        )
    med = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
    print(
        f"median of {args.rounds}: {args.receivers} receivers {args.messages * MESSAGE / 2**20:.2f} MiB behind each: "
        f"idle {med['idle_mb']:.1f} MB, queued {med['queued_mb']:.1f} MB (+{med['queued_mb'] - med['idle_mb']:.1f}), "
        f"peak catching up {med['peak_mb']:.1f} MB (+{med['peak_mb'] - med['idle_mb']:.1f}), "
        f"caught up in {med['catch_up_s']:.2f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
