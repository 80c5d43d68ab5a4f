"""rawws's fittings on wsproto's frame engine: the C unmasker and the size limit on headers.

Both must be invisible except as speed: the same frames, the same failures,
the same codes as wsproto's own decoder, for any bytes split any way.
"""

from __future__ import annotations

import itertools
import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.frame_protocol import FrameProtocol, Opcode, ParseFailed, XorMaskerSimple

from rawws.core import masking
from rawws.core.frames import TunedFrameProtocol
from rawws.core.masking import Unmasker

# -- the masker ---------------------------------------------------------------------


def test_the_c_masker_is_built_in_ci():
    """Without it rawws still works (wsproto's masker stays), but CI must test the fast path."""
    if os.environ.get("CI") == "true":
        assert masking.FAST_MASKING, (
            "rawws.core._mask was not built: is a C compiler installed?"
        )
    elif not masking.FAST_MASKING:
        pytest.skip(
            "rawws.core._mask is not built here (no C compiler at install time)"
        )


needs_c = pytest.mark.skipif(
    not masking.FAST_MASKING, reason="rawws.core._mask is not built"
)


@needs_c
@given(data=st.binary(max_size=300), key=st.binary(min_size=4, max_size=4))
def test_apply_mask_is_xor_with_the_repeated_key(data: bytes, key: bytes):
    assert masking.apply_mask(data, key) == bytes(
        b ^ key[i % 4] for i, b in enumerate(data)
    )


@needs_c
def test_apply_mask_takes_any_buffer_and_checks_the_key():
    key = b"\x01\x02\x03\x04"
    expected = masking.apply_mask(b"abcdefghij", key)
    assert masking.apply_mask(bytearray(b"abcdefghij"), key) == expected
    assert masking.apply_mask(memoryview(b"abcdefghij"), bytearray(key)) == expected
    assert masking.apply_mask(b"", key) == b""
    with pytest.raises(ValueError):
        masking.apply_mask(b"abc", b"\x01\x02\x03")
    with pytest.raises(TypeError):
        masking.apply_mask("text", key)  # type: ignore[arg-type]


@needs_c
@given(
    data=st.binary(max_size=2000),
    key=st.binary(min_size=4, max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=6),
)
def test_unmasker_matches_wsproto_across_chunk_boundaries(
    data: bytes, key: bytes, cuts: list[int]
):
    """A frame's payload arrives in pieces; the key must continue where the last piece stopped."""
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    ours, theirs = Unmasker(key), XorMaskerSimple(bytearray(key))
    for start, end in itertools.pairwise(bounds):
        chunk = bytearray(data[start:end])
        assert ours.process(chunk) == theirs.process(chunk)


def test_large_payload_unmasks_like_wsproto():
    data, key = os.urandom(1 << 20), os.urandom(4)
    assert Unmasker(key).process(data) == XorMaskerSimple(bytearray(key)).process(
        bytearray(data)
    )


# -- the decoder: differential against wsproto's own ----------------------------------

# Mostly valid, so streams get past their first frame; now and then reserved
# opcodes and bits, unmasked frames, non-minimal lengths and bad UTF-8.
OPCODES = [0x1, 0x2] * 6 + [0x0] * 3 + [0x9, 0xA, 0x8, 0x3, 0xB]


@st.composite
def frames(draw) -> bytes:
    opcode = draw(st.sampled_from(OPCODES))
    fin = draw(st.sampled_from([True, True, True, False]))
    rsv = draw(st.sampled_from([0] * 12 + [0x40, 0x10]))
    if opcode == 0x8:
        payload = draw(
            st.one_of(
                st.just(b""),
                st.builds(
                    lambda c, r: struct.pack("!H", c) + r,
                    st.integers(0, 5000),
                    st.binary(max_size=20),
                ),
            )
        )
    elif opcode == 0x1 or draw(st.booleans()):
        payload = draw(st.text(max_size=40)).encode("utf-8")
        payload = draw(
            st.sampled_from([payload] * 8 + [payload[:-1], payload + b"\xff"])
        )
    else:
        payload = draw(st.binary(max_size=300))
    masked = draw(st.sampled_from([True] * 15 + [False]))
    length = len(payload)
    wide = draw(st.sampled_from(["minimal"] * 15 + ["16", "64"]))
    first = (0x80 if fin else 0) | rsv | opcode
    mask_bit = 0x80 if masked else 0
    if wide == "64" or length > 0xFFFF:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    elif wide == "16" or length > 125:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BB", first, mask_bit | length)
    if not masked:
        return header + payload
    key = draw(st.binary(min_size=4, max_size=4))
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def outcome(proto: FrameProtocol, chunks: list[bytes]) -> list:
    """Every message and control frame parsed, in order, then the failure (code and message) if one came.

    Messages, not the pieces they came in: a text message in pieces comes as
    bytes from ours (decoded once whole by the core), as ``str`` from wsproto.
    """
    seen: list = []
    pieces: list[str | bytes] = []
    try:
        for chunk in chunks:
            proto.receive_bytes(chunk)
            for frame in proto.received_frames():
                if frame.opcode.iscontrol():
                    seen.append(tuple(frame))
                    continue
                pieces.append(frame.payload)  # type: ignore[arg-type]
                if frame.message_finished:
                    seen.append((frame.opcode, message_of(frame.opcode, pieces)))
                    pieces = []
    except ParseFailed as exc:
        seen.append(("failed", exc.code, str(exc)))
    return seen


def message_of(opcode: Opcode, pieces: list[str | bytes]) -> str | bytes:
    if opcode is Opcode.TEXT and all(isinstance(p, str) for p in pieces):
        return "".join(pieces)  # type: ignore[arg-type]
    whole = b"".join(pieces)  # type: ignore[arg-type]
    return whole.decode() if opcode is Opcode.TEXT else whole


@settings(max_examples=400)
@given(
    stream=st.lists(frames(), min_size=1, max_size=8),
    cuts=st.lists(st.integers(0, 3000), max_size=5),
)
def test_decoder_parses_exactly_like_wsproto(stream: list[bytes], cuts: list[int]):
    data = b"".join(stream)
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    expected = outcome(FrameProtocol(client=False, extensions=[]), chunks)
    assert (
        outcome(
            TunedFrameProtocol(client=False, extensions=[], max_message_bytes=1 << 20),
            chunks,
        )
        == expected
    )
    assert outcome(TunedFrameProtocol(client=False, extensions=[]), chunks) == expected


def test_limit_counts_declared_lengths_over_fragments_and_resets_per_message():
    def frame(opcode: int, size: int, fin: bool = True) -> bytes:
        return (
            struct.pack("!BB", (0x80 if fin else 0) | opcode, 0x80 | 126)
            + struct.pack("!H", size)
            + bytes(4)
            + bytes(size)
        )

    proto = TunedFrameProtocol(client=False, extensions=[], max_message_bytes=1000)
    ok = frame(0x2, 600, fin=False) + frame(0x0, 400) + frame(0x2, 1000)
    proto.receive_bytes(ok)
    assert [f.payload for f in proto.received_frames()] == [
        bytes(600),
        bytes(400),
        bytes(1000),
    ]
    proto.receive_bytes(frame(0x2, 600, fin=False) + frame(0x0, 401))
    with pytest.raises(ParseFailed) as failure:
        list(proto.received_frames())
    assert failure.value.code == 1009


# -- building frames: the same bytes as wsproto's ------------------------------------

BOUNDARY_SIZES = [0, 1, 125, 126, 127, 65535, 65536, 70000]


@pytest.mark.parametrize("size", BOUNDARY_SIZES)
@pytest.mark.parametrize("opcode", [0x0, 0x1, 0x2])
@pytest.mark.parametrize("fin", [True, False])
def test_server_data_frames_are_byte_for_byte_wsprotos(
    size: int, opcode: int, fin: bool
):
    from wsproto.frame_protocol import Opcode

    payload = os.urandom(size)
    ours = TunedFrameProtocol(client=False, extensions=[])._serialize_frame(
        Opcode(opcode), payload, fin
    )
    theirs = FrameProtocol(client=False, extensions=[])._serialize_frame(
        Opcode(opcode), payload, fin
    )
    assert ours == theirs


@given(
    text=st.text(max_size=300),
    data=st.binary(max_size=300),
    ping=st.binary(max_size=125),
)
def test_public_sends_match_wsproto(text: str, data: bytes, ping: bytes):
    ours, theirs = (
        TunedFrameProtocol(client=False, extensions=[]),
        FrameProtocol(client=False, extensions=[]),
    )
    assert ours.send_data(text, True) == theirs.send_data(text, True)
    assert ours.send_data(data, False) == theirs.send_data(
        data, False
    )  # then a continuation
    assert ours.send_data(data, True) == theirs.send_data(data, True)
    assert ours.ping(ping) == theirs.ping(ping)
    assert ours.pong(ping) == theirs.pong(ping)
    assert ours.close(1001, text[:40]) == theirs.close(1001, text[:40])
    assert ours.close() == theirs.close()


def test_oversize_control_frames_are_refused_like_wsproto():
    for proto in (
        TunedFrameProtocol(client=False, extensions=[]),
        FrameProtocol(client=False, extensions=[]),
    ):
        with pytest.raises(ValueError):
            proto.ping(bytes(126))


def test_client_frames_still_go_through_wsproto_masking():
    frame = TunedFrameProtocol(client=True, extensions=[]).send_data(b"abc", True)
    assert frame[0] == 0x82 and frame[1] == 0x80 | 3 and len(frame) == 2 + 4 + 3
