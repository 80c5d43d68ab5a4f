"""Unmasking client frames (RFC 6455 §5.3) in C when rawws's extension is built.

wsproto XORs a frame's payload with four strided ``bytes.translate`` calls:
about 18 µs per 16 KiB here, the largest single cost of a large echo. rawws
ships a ten-line C loop (``rawws/core/_mask.c``, built by ``pip install``) and hands
wsproto an ``Unmasker`` with the same ``process`` interface as its
``XorMaskerSimple``. Without a C compiler the extension is skipped and
wsproto's own masker stays in place: slower, identical bytes.
"""

from __future__ import annotations

try:
    from rawws.core._mask import apply_mask

    #: True when the C masker is built; tests require it under CI=true.
    FAST_MASKING = True
except (
    ImportError
):  # exercised where no compiler was available (tests/e2e/test_wheel.py)
    FAST_MASKING = False

    def apply_mask(
        data: bytes | bytearray | memoryview, key: bytes | bytearray
    ) -> bytes:
        """Never called: an ``Unmasker`` is only made when ``FAST_MASKING``."""
        raise RuntimeError("rawws's C unmasker is not built")


class Unmasker:
    """Drop-in for wsproto's ``XorMaskerSimple``: XOR chunks of one frame, the key continuing across chunks."""

    __slots__ = ("_key",)

    def __init__(self, masking_key: bytes | bytearray) -> None:
        # Not copied: wsproto hands over the four bytes it sliced off for this frame.
        self._key = masking_key

    def process(self, data: bytes | bytearray) -> bytes:
        if not data:
            return b""
        key = self._key
        rotation = len(data) & 3
        if rotation:  # the next chunk of this frame starts mid-key
            self._key = key[rotation:] + key[:rotation]
        return apply_mask(data, key)
