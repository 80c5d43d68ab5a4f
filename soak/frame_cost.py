"""What compressed frames cost the server (issue 20, items 1 and 3), measured from outside on raw sockets.

* **Bombs.** One signed-in connection sends ``BOMBS`` compressed frames of
  ~1 KiB that would each inflate to ~1 MiB (before the fix each was inflated and
  decoded before the chat's frame rate dropped it: 3,000 of them cost 6.8 s of
  server CPU and another user's say→ack went from 3 ms to 13.7 s). It must be
  closed with 1009, and the server's CPU meanwhile (from ``/proc``) stay under
  ``BOMB_CPU_LIMIT_S``.
* **Held fragments.** ``HOLDERS`` connections each send the ~1 KiB first
  fragment of a compressed text message of ~1 MiB (an astral character, then
  ASCII) and nothing more. What the server holds for each (its RSS growth per
  connection) must stay under ``HELD_LIMIT_KIB`` (before: ~4 MiB each, a 1 MiB
  partial ``str`` four bytes wide, for as long as the peer answered pings; now
  ``/ws`` closes it with 1009 at 64 KiB, and a library endpoint would hold at
  most its message limit in UTF-8 bytes, for ``message_timeout_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import time
import zlib
from dataclasses import dataclass, field

from soak.attacks import upgrade_head
from testkit import masked_frame

KiB, MiB = 1024, 1024 * 1024
BOMBS = 1000
BOMB_CPU_LIMIT_S = 0.5
HOLDERS = 16  # within the per-user connection limit (20)
HELD_FRAGMENT_BYTES = MiB - 256  # inflated: what the server took before the fix
HELD_LIMIT_KIB = (
    512  # per connection: the fragment's bytes and the connection's own state
)
DEFLATE = "Sec-WebSocket-Extensions: permessage-deflate\r\n"


@dataclass
class FrameCost:
    figures: dict[str, object] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def deflated(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def open_compressed(
    port: int, token: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = upgrade_head(port, token).replace(b"\r\n\r\n", f"\r\n{DEFLATE}\r\n".encode())
    writer.write(head)
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    if b" 101 " not in answer.split(b"\r\n", 1)[0]:
        raise ConnectionError(f"upgrade refused: {answer[:40]!r}")
    return reader, writer


async def close_code_of(reader: asyncio.StreamReader, timeout_s: float) -> int | None:
    """Read server frames until a close frame (its code) or the end (``None``)."""
    with contextlib.suppress(asyncio.IncompleteReadError, OSError, TimeoutError):
        async with asyncio.timeout(timeout_s):
            while True:
                first, second = await reader.readexactly(2)
                length = second & 0x7F
                if length == 126:
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                elif length == 127:
                    (length,) = struct.unpack("!Q", await reader.readexactly(8))
                payload = await reader.readexactly(length)
                if first & 0x0F == 0x8:
                    return (
                        struct.unpack("!H", payload[:2])[0]
                        if len(payload) >= 2
                        else 1005
                    )
    return None


async def bombs(port: int, pid: int, token: str, result: FrameCost) -> None:
    reader, writer = await open_compressed(port, token)
    bomb = masked_frame(0x1, deflated(b" " * (MiB - 64)), rsv1=True)
    before = cpu_s(pid)
    with contextlib.suppress(OSError):
        writer.write(bomb * BOMBS)
    code = await close_code_of(reader, 30)
    await asyncio.sleep(0.5)  # what the server does after the close counts too
    spent = cpu_s(pid) - before
    writer.close()
    result.figures["bomb_frames"] = f"{BOMBS} x {len(bomb)} B (each ~1 MiB inflated)"
    result.figures["bomb_close_code"] = code
    result.figures["bomb_server_cpu_s"] = round(spent, 2)
    if code != 1009:
        result.failures.append(f"the compressed bombs were answered {code}, not 1009")
    if spent > BOMB_CPU_LIMIT_S:
        result.failures.append(f"the compressed bombs cost {spent:.2f} s of server CPU")


async def held_fragments(port: int, pid: int, token: str, result: FrameCost) -> None:
    text = ("\U0001f600" + "a" * (HELD_FRAGMENT_BYTES - 4)).encode()
    fragment = masked_frame(0x1, deflated(text), fin=False, rsv1=True)
    await asyncio.sleep(0.5)
    baseline = rss_kib(pid)
    opened = []
    try:
        for _ in range(HOLDERS):
            reader, writer = await open_compressed(port, token)
            writer.write(fragment)
            opened.append((reader, writer))
        await asyncio.sleep(2.0)
        per_connection = max(0, rss_kib(pid) - baseline) / HOLDERS
        codes = await asyncio.gather(*(close_code_of(r, 0.5) for r, _ in opened))
    finally:
        for _, writer in opened:
            writer.close()
    result.figures["held_closed_by_server"] = (
        f"{sum(code is not None for code in codes)}/{HOLDERS} "
        f"({', '.join(sorted({str(code) for code in codes if code is not None})) or '-'})"
    )
    result.figures["held_fragment"] = (
        f"{len(fragment)} B uploaded, {len(text) // KiB} KiB inflated, x{HOLDERS}"
    )
    result.figures["held_kib_per_connection"] = round(per_connection)
    if per_connection > HELD_LIMIT_KIB:
        result.failures.append(
            f"a held compressed fragment costs {per_connection:.0f} KiB a connection"
        )


async def frame_cost(port: int, pid: int, bomber: str, holder: str) -> FrameCost:
    """Both families, one after the other, with the tokens of two users."""
    result = FrameCost()
    began = time.monotonic()
    await bombs(port, pid, bomber, result)
    await held_fragments(port, pid, holder, result)
    result.figures["frame_cost_phase_s"] = round(time.monotonic() - began, 1)
    return result
