"""The C load process against a scripted server: the bytes it sends, the frames it parses, its report.

``rawws serve`` sends no ping to the study's members and writes its frames
whole, so the study alone would never show whether members.c answers a ping,
reads a 64-bit length, joins a frame split between two reads or counts a gap
in the sequence. A server of a few lines written here does all that, byte by
byte, and refuses the first join, which members.c must try again and count.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import time
from typing import BinaryIO

import pytest

from experiments.scale.client import built_members

JOIN = json.dumps({"type": "join", "room": "big"}).encode()  # what members.py sends


def server_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked server frame, its length in 7, 16 or 64 bits as RFC 6455 §5.2 lays out."""
    size = len(payload)
    if size <= 125:
        return struct.pack("!BB", 0x80 | opcode, size) + payload
    if size <= 0xFFFF:
        return struct.pack("!BBH", 0x80 | opcode, 126, size) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, size) + payload


def client_frame(stream: BinaryIO) -> tuple[int, bytes]:
    """A client frame read whole: it must be masked (§5.3); its opcode and unmasked payload."""
    first, second = stream.read(2)
    assert second & 0x80, "a client frame must be masked"
    assert second & 0x7F <= 125
    key = stream.read(4)
    payload = bytes(b ^ key[i % 4] for i, b in enumerate(stream.read(second & 0x7F)))
    return first, payload


def stamp(seq: int, ago_us: int, pad: int = 0, room_id: int | None = None) -> bytes:
    """A chat message (the room's id ``seq`` unless given) in the server's field order, padded after its text."""
    text = f"seq {seq} at {time.monotonic_ns() // 1000 - ago_us}"
    message = {
        "type": "message",
        "room": "big",
        "id": seq if room_id is None else room_id,
        "user": "bench",
        "text": text,
        "pad": "x" * pad,
    }
    return json.dumps(
        message, separators=(",", ":")
    ).encode()  # as the server writes it


def tell(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


def say(process: subprocess.Popen[str], line: str) -> str:
    """A command and the line it answers."""
    tell(process, line)
    assert process.stdout is not None
    return process.stdout.readline()


def test_members_c_joins_answers_pings_and_reports_what_it_parsed() -> None:
    if not shutil.which("gcc"):
        if os.environ.get("CI") == "true":
            pytest.fail("gcc is required under CI: the scale study's C load process")
        pytest.skip("gcc not installed")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)
    port = listener.getsockname()[1]
    process = subprocess.Popen(
        [str(built_members()), "--port", str(port), "--token", "tok", "--count", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        refused, _ = (
            listener.accept()
        )  # the first join is refused: tried again a second later
        refused.recv(4096)
        refused.sendall(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
        refused.close()
        conn, _ = listener.accept()
        stream = conn.makefile("rb")
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += stream.readline()
        lines = head.decode().split("\r\n")
        key = next(line for line in lines if line.startswith("Sec-WebSocket-Key: "))
        lines.remove(key)
        assert lines == [
            "GET /ws HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
            "Authorization: Bearer tok",
            "",
            "",
        ]
        assert len(base64.b64decode(key[19:], validate=True)) == 16
        assert client_frame(stream) == (0x81, JOIN)
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\n\r\n" + server_frame(0x1, b'{"type":"joined"}')
        )
        assert process.stdout is not None and process.stdout.readline() == "ready 1\n"
        tell(process, "start")
        assert say(process, "count") == "0\n"  # "start" was read before any frame below
        conn.sendall(server_frame(0x9, b"hi"))
        assert client_frame(stream) == (0x8A, b"hi")
        conn.sendall(server_frame(0x1, stamp(1, 5000)))  # 7-bit length
        conn.sendall(server_frame(0x1, stamp(2, 5000, pad=300)))  # 16-bit length
        big = server_frame(
            0x1, stamp(3, 5000, pad=70_000)
        )  # 64-bit length, in two reads
        conn.sendall(big[:5])
        time.sleep(0.2)
        conn.sendall(big[5:] + server_frame(0x1, stamp(5, 5000)))  # 4 never comes
        # Two senders' messages crossed: the room's ids still go up by one, so in order.
        conn.sendall(server_frame(0x1, stamp(7, 5000, room_id=6)))
        conn.sendall(server_frame(0x1, stamp(6, 5000, room_id=7)))
        deadline = time.monotonic() + 30
        while (count := say(process, "count")) != "6\n" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert count == "6\n"
        report = json.loads(say(process, "report"))
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        listener.close()
    assert (report["members"], report["counts"], report["received"]) == (1, [6], 6)
    assert (report["out_of_order"], report["retries"]) == (1, 1)
    assert "403" in report["last_refusal"]
    assert sorted(report["last_arrival_ms"]) == ["1", "2", "3", "5", "6", "7"]
    assert all(5.0 <= ms < 30_000 for ms in report["latencies_ms"])
    assert report["cpu_s"] >= 0
