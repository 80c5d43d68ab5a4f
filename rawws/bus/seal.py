"""Every event on the bus is sealed: signed with a key the nodes share, and fresh. Sans-I/O.

Anyone who can publish on the Redis channel could otherwise post as any user to every node (and
take the id of the real message, so it was not delivered live) or add users to ``who``. A Redis
password keeps strangers off the channel; the seal keeps whatever does reach it from being acted on:

* **Signed.** HMAC-SHA256 over the channel's name, the header and the payload, with a key
  derived from the JWT secret (``bus_key``): the nodes must share that secret anyway (a token
  from one is good on all), so there is no new setting to get wrong, and whoever holds it can
  already sign tokens as any user, so the bus gives nobody more than they have. The key is
  derived rather than the secret itself, so a bus tag can never serve as a token's signature.
* **Fresh.** The header carries the sender (random per process), a sequence number that only grows,
  and the sender's wall-clock time. A receiver acts on a sender's event only when its number is
  above every number it has accepted from that sender, and its time is within ``MAX_AGE_S`` of
  the receiver's own, so a recorded event played again is refused: by its number on a node that
  saw it, by its age on a node that did not (one started since). A sender's record is kept
  until its last event is older than the window, after which its age refuses any replay anyway.
  Node clocks must agree within ``MAX_AGE_S`` (NTP).

What the payload means is the chat's (``rawws.chat.codec``): the seal says who sent it and that it
is new, never what it says.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import struct

KEY_LABEL = b"rawws bus key v1"
MAGIC = b"rwb1"
HEADER = struct.Struct(">4s8sQQ")  # magic, sender, sequence number, sender's time in ms
TAG_BYTES = 32
MAX_AGE_S = (
    30.0  # an event older (or newer) than this by the receiver's clock is refused
)
MIN_KEY_BYTES = 32
PRUNE_EVERY = 1024  # opened events between two sweeps of the senders' records


def bus_key(jwt_secret: bytes) -> bytes:
    """The bus's key, derived from the JWT secret every node shares."""
    return hmac.new(jwt_secret, KEY_LABEL, hashlib.sha256).digest()


class Refused(enum.Enum):
    """Why an event was not opened."""

    FORGED = (
        "not sealed with this cluster's key"  # or not sealed at all: garbage, a forger
    )
    STALE = "a replay, or sent too long ago"


class Seal:
    """Seals this node's events and opens the others', refusing forged and replayed ones.

    ``context`` (the channel's name) is signed too, so an event cannot be moved to another channel.
    """

    def __init__(
        self, key: bytes, context: bytes = b"", *, max_age_s: float = MAX_AGE_S
    ) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"a bus key has at least {MIN_KEY_BYTES} bytes")
        self._key = key
        self._context = context
        self.max_age_s = max_age_s
        self.sender = secrets.token_bytes(8)
        self._sequence = 0
        self._newest: dict[
            bytes, tuple[int, float]
        ] = {}  # sender → (highest number, its time)
        self._opened = 0

    def _tag(self, header: bytes, payload: bytes) -> bytes:
        mac = hmac.new(self._key, self._context, hashlib.sha256)
        mac.update(header)
        mac.update(payload)
        return mac.digest()

    def seal(self, payload: bytes, now: float) -> bytes:
        """``payload`` as it goes on the bus, sent at ``now`` (seconds since the epoch)."""
        self._sequence += 1
        header = HEADER.pack(MAGIC, self.sender, self._sequence, int(now * 1000))
        return header + self._tag(header, payload) + payload

    def open(self, data: bytes, now: float) -> bytes | Refused:
        """The payload of ``data`` received at ``now``, or why it is refused.

        The tag is checked before anything else in the header is believed; the cost is one HMAC
        over what arrived, bounded by what Redis delivers.
        """
        if len(data) < HEADER.size + TAG_BYTES:
            return Refused.FORGED
        header, tag = data[: HEADER.size], data[HEADER.size : HEADER.size + TAG_BYTES]
        payload = data[HEADER.size + TAG_BYTES :]
        if not hmac.compare_digest(tag, self._tag(header, payload)):
            return Refused.FORGED
        magic, sender, sequence, sent_ms = HEADER.unpack(header)
        if magic != MAGIC:
            return Refused.FORGED
        sent = sent_ms / 1000
        if abs(now - sent) > self.max_age_s:
            return Refused.STALE
        newest, _ = self._newest.get(sender, (0, 0.0))
        if sequence <= newest:
            return Refused.STALE
        self._newest[sender] = (sequence, sent)
        self._opened += 1
        if self._opened % PRUNE_EVERY == 0:
            self._prune(now)
        return payload

    def _prune(self, now: float) -> None:
        """Forget senders whose newest event is past the window: their age refuses any replay."""
        for sender in [
            s for s, (_, sent) in self._newest.items() if now - sent > self.max_age_s
        ]:
            del self._newest[sender]

    @property
    def senders(self) -> int:
        """Senders whose record is kept (for tests: the record is bounded)."""
        return len(self._newest)
