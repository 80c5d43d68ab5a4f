"""The seal, sans-I/O: only the cluster's key opens an event, any change to it is refused, and an
event is opened once, within its window."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawws.bus.seal import (
    HEADER,
    MAX_AGE_S,
    PRUNE_EVERY,
    TAG_BYTES,
    Refused,
    Seal,
    bus_key,
)

KEY = bus_key(b"s" * 32)
NOW = 1_800_000_000.0


def pair() -> tuple[Seal, Seal]:
    """Two nodes of one cluster."""
    return Seal(KEY, b"rawws:events"), Seal(KEY, b"rawws:events")


@given(st.binary(max_size=2000))
def test_a_sealed_event_opens_to_its_payload(payload: bytes) -> None:
    sender, receiver = pair()
    assert receiver.open(sender.seal(payload, NOW), NOW + 1) == payload


@given(st.binary(max_size=200), st.data())
def test_any_change_is_refused(payload: bytes, data: st.DataObject) -> None:
    sender, receiver = pair()
    sealed = bytearray(sender.seal(payload, NOW))
    position = data.draw(st.integers(0, len(sealed) - 1))
    sealed[position] ^= data.draw(st.integers(1, 255))
    assert receiver.open(bytes(sealed), NOW) is Refused.FORGED


@given(st.binary(max_size=200), st.integers(0, HEADER.size + TAG_BYTES + 10))
def test_a_cut_event_is_refused(payload: bytes, keep: int) -> None:
    sender, receiver = pair()
    sealed = sender.seal(payload, NOW)
    if keep < len(sealed):
        assert receiver.open(sealed[:keep], NOW) is Refused.FORGED


@given(st.binary(max_size=300))
def test_anything_unsealed_is_refused(data: bytes) -> None:
    assert pair()[1].open(data, NOW) is Refused.FORGED


def test_another_key_or_channel_is_refused() -> None:
    sealed = Seal(KEY, b"rawws:events").seal(b"{}", NOW)
    assert Seal(bus_key(b"t" * 32), b"rawws:events").open(sealed, NOW) is Refused.FORGED
    assert Seal(KEY, b"other").open(sealed, NOW) is Refused.FORGED


def test_an_event_opens_once_and_only_newer_ones_after_it() -> None:
    sender, receiver = pair()
    first, second, third = (sender.seal(b"%d" % i, NOW) for i in range(3))
    assert receiver.open(second, NOW) == b"1"
    assert receiver.open(second, NOW) is Refused.STALE  # played again
    assert receiver.open(first, NOW) is Refused.STALE  # older than one already opened
    assert receiver.open(third, NOW) == b"2"


@pytest.mark.parametrize("skew", [MAX_AGE_S + 0.01, -(MAX_AGE_S + 0.01)])
def test_an_event_outside_its_window_is_refused(skew: float) -> None:
    """A node that never saw an event (started since) refuses it by its age."""
    sender, receiver = pair()
    assert receiver.open(sender.seal(b"{}", NOW), NOW + skew) is Refused.STALE
    assert receiver.open(sender.seal(b"{}", NOW), NOW + skew / 2) == b"{}"


def test_the_record_of_senders_is_bounded_by_the_window() -> None:
    receiver = Seal(KEY)
    for _ in range(PRUNE_EVERY - 1):
        assert receiver.open(Seal(KEY).seal(b"", NOW), NOW) == b""
    assert receiver.senders == PRUNE_EVERY - 1
    later = NOW + MAX_AGE_S + 1
    assert receiver.open(Seal(KEY).seal(b"", later), later) == b""
    assert receiver.senders == 1  # every sender past the window is forgotten


def test_the_bus_key_is_derived_not_the_secret() -> None:
    secret = b"s" * 32
    assert bus_key(secret) == KEY and bus_key(secret) != secret and len(KEY) == 32
    with pytest.raises(ValueError):
        Seal(b"short")
