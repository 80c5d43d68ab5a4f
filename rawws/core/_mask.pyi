"""The C unmasker (``_mask.c``): built by ``pip install`` where a C compiler exists."""

def apply_mask(
    data: bytes | bytearray | memoryview, key: bytes | bytearray
) -> bytes: ...
