"""What the public coroutine API costs against the callback path: server CPU per 64 B echo.

Two echo servers, each its own process on loopback, the same settings
(compression off, everything else ``rawws.config``'s defaults):

* ``callback``: a ``Server`` with a ``WebSocketHandler`` whose ``on_message``
  calls ``connection.send_nowait(data)``: the internal path the chat uses;
* ``public``: ``rawws.serve(echo, ...)`` with ``async for message in
  connection: await connection.send(message)``: the documented API.

A load client in this process (epoll, no asyncio: it must cost less than the
server) opens ``--connections`` WebSockets and keeps ``--window`` 64 B
messages in flight on each; every reply is checked byte for byte. Per round,
each flavour is started fresh (the order alternating between rounds), warmed
up, then timed: server CPU (utime + stime of its process, ``/proc/<pid>/stat``)
over the timed phase ÷ the replies received. The table gives the median over
rounds of each flavour's µs per message, and the median of the per-round
ratios public ÷ callback. Usage::

    python bench/public_api.py [--rounds 5] [--seconds 3] [--connections 50] [--window 16]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import os
import select
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAYLOAD = b"0123456789abcdef" * 4  # 64 bytes
MASK = b"\x37\xfa\x21\x3d"
FLAVOURS = ("callback", "public")


# -- the servers (run as ``--serve FLAVOUR``) ----------------------------------------


def serve(flavour: str) -> None:
    sys.path.insert(0, str(ROOT))
    import rawws
    from rawws.config import ServerConfig
    from rawws.server.connection import ServerConnection
    from rawws.server.server import Server

    class CallbackEcho:
        def on_open(self, connection: ServerConnection) -> None:
            pass

        def on_message(self, connection: ServerConnection, data: str | bytes) -> None:
            connection.send_nowait(data)

        def on_close(self, connection: ServerConnection, code: int) -> None:
            pass

    async def echo(connection: ServerConnection) -> None:
        async for message in connection:
            await connection.send(message)

    config = ServerConfig(
        host="127.0.0.1", port=0, compression="off", websockets_per_address=10_000
    )

    async def main() -> None:
        if flavour == "public":
            server = rawws.serve(echo, "127.0.0.1", 0, compression=None, config=config)
        else:
            server = Server(config, health_routes=False)
            server.add_websocket(None, CallbackEcho())
        async with server:
            gc.freeze()
            print(server.port, flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())


# -- the load client -------------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def masked(payload: bytes) -> bytes:
    body = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return bytes((0x82, 0x80 | len(payload))) + MASK + body


REQUEST = masked(PAYLOAD)
REPLY = bytes((0x82, len(PAYLOAD))) + PAYLOAD


def open_connections(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                raise RuntimeError("the server closed during the handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"no upgrade: {head[:60]!r}")
        if head.partition(b"\r\n\r\n")[2]:
            raise RuntimeError("bytes after the 101 before any message")
        sock.setblocking(False)
        socks.append(sock)
    return socks


def run_load(socks: list[socket.socket], window: int, seconds: float) -> int:
    """Keep ``window`` messages in flight on each socket for ``seconds``; the replies received (checked)."""
    ep = select.epoll()
    index = {sock.fileno(): i for i, sock in enumerate(socks)}
    pending = [b""] * len(socks)
    for sock in socks:
        ep.register(sock.fileno(), select.EPOLLIN)
        sock.send(REQUEST * window)
    received = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            for fd, _ in ep.poll(0.5):
                i = index[fd]
                sock = socks[i]
                data = pending[i] + sock.recv(256 * 1024)
                whole = len(data) // len(REPLY)
                if whole:
                    if data[: whole * len(REPLY)] != REPLY * whole:
                        raise RuntimeError("a reply is not what was sent")
                    received += whole
                    # A few hundred bytes: the socket's buffer takes them whole.
                    sock.send(REQUEST * whole)
                pending[i] = data[whole * len(REPLY) :]
    finally:
        ep.close()
    # Let the window in flight come back, so the next phase starts from the same state.
    for i, sock in enumerate(socks):
        sock.setblocking(True)
        sock.settimeout(10)
        owed = window * len(REPLY) - len(pending[i])
        while owed > 0:
            owed -= len(sock.recv(owed))
        sock.setblocking(False)
        pending[i] = b""
    return received


def measure(flavour: str, args: argparse.Namespace) -> float:
    """One round of one flavour: server CPU µs per message."""
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", flavour],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        socks = open_connections(port, args.connections)
        run_load(socks, args.window, args.warmup)
        cpu_before = proc_cpu_s(server.pid)
        messages = run_load(socks, args.window, args.seconds)
        cpu = proc_cpu_s(server.pid) - cpu_before
        for sock in socks:
            sock.close()
        return cpu / messages * 1e6
    finally:
        assert server.stdin is not None
        server.stdin.close()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=FLAVOURS, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed phase")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--window", type=int, default=16)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    results: dict[str, list[float]] = {flavour: [] for flavour in FLAVOURS}
    ratios = []
    for round_ in range(args.rounds):
        order = FLAVOURS if round_ % 2 == 0 else FLAVOURS[::-1]
        this = {flavour: measure(flavour, args) for flavour in order}
        for flavour, value in this.items():
            results[flavour].append(value)
        ratios.append(this["public"] / this["callback"])
        print(
            f"round {round_ + 1}: callback {this['callback']:.2f} µs, "
            f"public {this['public']:.2f} µs, ratio {ratios[-1]:.3f}",
            file=sys.stderr,
        )
    print(
        f"\n64 B echo, {args.connections} connections × {args.window} in flight, "
        f"{args.rounds} rounds of {args.seconds:g} s (medians, [min–max]):\n"
    )
    print("| echo server | server CPU per message, µs |")
    print("|---|---|")
    for flavour, label in (
        ("callback", "callback (`WebSocketHandler`, `send_nowait`)"),
        ("public", "public (`rawws.serve`, `async for` + `await send`)"),
    ):
        values = results[flavour]
        print(
            f"| {label} | {statistics.median(values):.2f} "
            f"[{min(values):.2f}–{max(values):.2f}] |"
        )
    print(
        f"| **public ÷ callback** | **{statistics.median(ratios):.3f}** "
        f"[{min(ratios):.3f}–{max(ratios):.3f}] |"
    )


if __name__ == "__main__":
    main()
