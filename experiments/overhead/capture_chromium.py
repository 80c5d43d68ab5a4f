"""Capture the exact request bytes a real Chromium sends for a polling fetch() and a WebSocket upgrade.

    python -m experiments.overhead.capture_chromium [--chromium /usr/bin/chromium]

Serves a page on 127.0.0.1 whose script does what a polling client and a
WebSocket client do (``fetch('/poll?since=0', {cache: 'no-store'})`` and
``new WebSocket('ws://…/ticker')``), runs headless Chromium against it, and
records every request head as it arrived on the socket. The captures go to
``experiments/overhead/captured/`` with the browser's version (not committed:
``python -m experiments.overhead`` runs this when that folder is empty); the
study replays them byte for byte (with the target and ``Host`` adapted), so it
needs a browser once, not at every run.

What such a capture is and is not: it is a current Chromium's own header
set, but headless (its User-Agent says ``HeadlessChrome``, 8 bytes more than a
desktop Chrome's ``Chrome``), from a page on 127.0.0.1 (a "potentially
trustworthy" origin, so client hints are sent as on HTTPS), with no cookies
and no ``Authorization``: a real site's requests carry its cookies too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime

from experiments.overhead.common import CAPTURE_DIR

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

PAGE = """<!doctype html><meta charset=utf-8><title>capture</title><script>
(async () => {
  const r = await fetch('/poll?since=0', {cache: 'no-store'});
  await r.text();
  const ws = new WebSocket('ws://' + location.host + '/ticker');
  ws.onopen = () => ws.close();
})();
</script>"""


async def capture(chromium: str, timeout_s: float) -> dict[str, bytes]:
    heads: dict[str, bytes] = {}
    done = asyncio.Event()

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1].decode()
                if target == "/":
                    body = PAGE.encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                    )
                elif target.startswith("/poll"):
                    heads["poll"] = head
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
                    )
                elif target.startswith("/ticker"):
                    heads["websocket"] = head
                    key = next(
                        line.split(b":", 1)[1].strip()
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"sec-websocket-key:")
                    )
                    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
                    writer.write(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                    )
                    await writer.drain()
                    await reader.read(1024)  # the browser's close frame
                    writer.write(b"\x88\x02\x03\xe8")
                    await writer.drain()
                    done.set()
                    break
                else:
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.CancelledError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    profile = tempfile.mkdtemp(prefix="chromium-capture-")
    proc = subprocess.Popen(
        [
            chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"http://127.0.0.1:{port}/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await asyncio.wait_for(done.wait(), timeout_s)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        server.close()
        shutil.rmtree(profile, ignore_errors=True)
    return heads


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def write_capture(chromium: str, timeout_s: float = 60.0) -> dict[str, bytes]:
    """Capture with ``chromium`` into CAPTURE_DIR: the request heads, and chromium.json."""
    version = subprocess.run(
        [chromium, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    heads = asyncio.run(capture(chromium, timeout_s))
    CAPTURE_DIR.mkdir(exist_ok=True)
    for name, head in heads.items():
        (CAPTURE_DIR / f"chromium-{name}-request.bin").write_bytes(head)
    meta = {
        "browser": version,
        "mode": "headless (--headless=new), page served from http://127.0.0.1:<port>/, no cookies",
        "captured": datetime.now(UTC).isoformat(timespec="seconds"),
        "bytes": {name: len(head) for name, head in heads.items()},
    }
    (CAPTURE_DIR / "chromium.json").write_text(json.dumps(meta, indent=1) + "\n")
    return heads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.overhead.capture_chromium",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--chromium", default=find_chromium() or "chromium")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    heads = write_capture(args.chromium, args.timeout)
    print((CAPTURE_DIR / "chromium.json").read_text(), end="")
    for name, head in heads.items():
        print(f"--- {name} ---\n{head.decode('latin-1')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
