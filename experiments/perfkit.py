"""What the side-by-side scenarios share: server processes, their CPU and RSS, a raw chat client.

Used by the studies in ``experiments/perf/`` (compression, auth_handshake,
storm, latency), ``experiments/fanout/`` and ``experiments/cluster/``; what the
soak and the tests need too (ports, masked frames, processes, a logged-in
user) is in ``testkit``. Every server is a real process on 127.0.0.1 with a
fresh data dir; CPU is read from ``/proc/<pid>/stat`` (utime + stime) and
memory from ``/proc/<pid>/status`` (``VmRSS``), so the figures are the
server's own, whatever the load client costs. Rounds are interleaved and
reported as medians: the machine is shared and noisy.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import testkit
from rawws.server.open_files import raise_open_files_limit
from testkit import masked_frame

TICKS = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"
PASSWORD = "bench password 1"
BROWSER_OFFER = (
    "permessage-deflate; client_max_window_bits"  # what Chromium and Firefox send
)


def raise_fd_limit() -> None:
    """A load process opens thousands of sockets: the soft open-files limit up to the hard one,
    as ``rawws serve`` raises its own."""
    raise_open_files_limit()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def cpu_seconds_total(pids: list[int]) -> float:
    """CPU of several processes (a node and its workers); one that has gone counts nothing."""
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except OSError:
            continue
    return total


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class ServerProcess:
    """One server under test, started on a free port; stopped by its PID."""

    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    data_dir: str = ""
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        self.port = testkit.free_port()
        self.data_dir = tempfile.mkdtemp(prefix=f"bench-{self.name}-")
        command = [
            part.format(port=self.port, data_dir=self.data_dir) for part in self.command
        ]
        self.process = testkit.start(command, env={**os.environ, **self.env})
        testkit.wait_for_port(self.port, process=self.process, name=self.name)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None:
            testkit.stop(self.process, grace=20)


def rawws_command(*flags: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "rawws",
        "serve",
        "--port",
        "{port}",
        "--data-dir",
        "{data_dir}",
        "--log-level",
        "WARNING",
        *flags,
    ]


#: Lets the benches log many users in and open thousands of connections from 127.0.0.1 (the limits protect
#: a real service from one client; here one load client is everyone).
CHAT_ENV = {
    "RAWWS_LOGINS_PER_MINUTE_PER_USER": "100000",
    "RAWWS_LOGINS_PER_MINUTE_PER_ADDRESS": "100000",
    "RAWWS_WEBSOCKETS_PER_USER": "100000",
    "RAWWS_WEBSOCKETS_PER_ADDRESS": "100000",
    "RAWWS_REGISTRATIONS_PER_HOUR_PER_ADDRESS": "100000",
    "RAWWS_ARGON2_TIME_COST": "1",
    "RAWWS_ARGON2_MEMORY_KIB": "8192",
    "RAWWS_ARGON2_PARALLELISM": "1",
}


def upgrade_request(
    port: int, path: str, *, token: str | None = None, offer: str | None = None
) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if offer:
        lines.append(f"Sec-WebSocket-Extensions: {offer}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class RawClient:
    """A raw WebSocket client: it parses the server's frames (inflating compressed ones) into messages.

    ``on_message(text, received_at)`` is called for every text message; pings are answered.
    """

    def __init__(self, on_message: Callable[[str, float], None] | None = None) -> None:
        self.on_message = on_message
        self.messages = 0
        self.compressed = False
        self.writer: asyncio.StreamWriter | None = None
        self.closed = asyncio.Event()
        self._inflater: zlib._Decompress | None = None
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._fragment_compressed = False

    async def open(
        self,
        port: int,
        path: str,
        *,
        token: str | None = None,
        offer: str | None = None,
    ) -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(upgrade_request(port, path, token=token, offer=offer))
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            writer.close()
            raise RuntimeError(head.split(b"\r\n")[0].decode())
        self.compressed = b"permessage-deflate" in head.lower()
        self._inflater = zlib.decompressobj(-15) if self.compressed else None
        self.writer = writer
        asyncio.get_running_loop().create_task(self._read(reader))

    def send_json(self, frame: dict[str, object]) -> None:
        self.send_text(json.dumps(frame))

    def send_text(self, text: str, *, compress: bool = False) -> None:
        """One text message; ``compress`` deflates it as a browser does (a fresh 12-bit context: valid
        whether or not the server asked for ``client_no_context_takeover``)."""
        assert self.writer is not None
        data = text.encode()
        if compress and self.compressed:
            deflater = zlib.compressobj(6, zlib.DEFLATED, -12, 8)
            payload = (deflater.compress(data) + deflater.flush(zlib.Z_SYNC_FLUSH))[:-4]
            self.writer.write(masked_frame(0x1, payload, rsv1=True))
        else:
            self.writer.write(masked_frame(0x1, data))

    def close(self) -> None:
        """Send a close frame (1000) and drop TCP without waiting for the answer."""
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(masked_frame(0x8, b"\x03\xe8"))
            self.writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while data := await reader.read(262144):
                self._buffer += data
                self._parse(time.perf_counter())
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed.set()

    def _parse(self, now: float) -> None:
        buf = self._buffer
        pos = 0
        while len(buf) - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            length = second & 0x7F
            start = pos + 2
            if length == 126:
                if len(buf) - pos < 4:
                    break
                length = int.from_bytes(buf[start : start + 2], "big")
                start += 2
            elif length == 127:
                if len(buf) - pos < 10:
                    break
                length = int.from_bytes(buf[start : start + 8], "big")
                start += 8
            if len(buf) < start + length:
                break
            payload = bytes(buf[start : start + length])
            pos = start + length
            self._frame(first, payload, now)
        del buf[:pos]

    def _frame(self, first: int, payload: bytes, now: float) -> None:
        opcode = first & 0x0F
        if opcode == 0x9:  # ping: answer it, as any client does
            if self.writer is not None and not self.writer.is_closing():
                self.writer.write(masked_frame(0xA, payload))
            return
        if opcode in (0x8, 0xA):
            return
        if opcode in (0x1, 0x2):
            self._fragment_compressed = bool(first & 0x40)
        self._fragments.append(payload)
        if not first & 0x80:
            return
        data = b"".join(self._fragments)
        self._fragments = []
        if self._fragment_compressed:
            assert self._inflater is not None
            data = self._inflater.decompress(data + b"\x00\x00\xff\xff")
        self.messages += 1
        if self.on_message is not None:
            self.on_message(data.decode("utf-8"), now)


async def open_many(
    clients: list[RawClient],
    port: int,
    path: str,
    batch: int = 100,
    **kwargs: str | None,
) -> None:
    for start in range(0, len(clients), batch):
        await asyncio.gather(
            *(
                client.open(port, path, **kwargs)
                for client in clients[start : start + batch]
            )
        )
