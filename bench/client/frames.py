"""Frames built once, before anything is timed: masked client frames, the exact replies, the floor's own."""

from __future__ import annotations

import random

from bench.client.common import Target
from testkit import masked_frame


def ws_client_frame(
    payload: bytes, opcode: int = 0x2, rng: random.Random | None = None
) -> bytes:
    """One masked, unfragmented client frame (RFC 6455 §5.2), its key drawn from ``rng``
    (seeded by the caller: the same frames on every run, for every server)."""
    return masked_frame(opcode, payload, mask=(rng or random.Random()).randbytes(4))


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


CLOSE_1000 = ws_client_frame(
    (1000).to_bytes(2, "big"), opcode=0x8, rng=random.Random(7)
)


def payloads(size: int, count: int, seed: int) -> list[bytes]:
    """``count`` distinct payloads of ``size`` bytes; each starts with its index."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        tag = f"#{i:05d}:".encode()
        body = rng.randbytes(max(0, size - len(tag)))
        out.append((tag + body)[:size])
    return out


def prebuilt_frames(
    target: Target, size: int, count: int, seed: int
) -> tuple[list[bytes], list[bytes]]:
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
