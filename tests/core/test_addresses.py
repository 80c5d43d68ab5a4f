"""One limit key per client, however its address is spelled: IPv6 per /64, IPv4 per address."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawws.core.addresses import limit_key, peer_limit_key

ipv4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
ipv6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)
ipv6_network = st.integers(0, 2**64 - 1)  # a /64, by its top 64 bits
host = st.integers(0, 2**64 - 1)  # an interface id inside a /64


def in_network(network: int, interface: int) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(network << 64 | interface)


def spellings(address: ipaddress.IPv6Address) -> list[str]:
    """The ways a header or socket may write one IPv6 address."""
    return [
        str(address),
        address.exploded,
        address.exploded.upper(),
        str(address).upper(),
        f"[{address}]",
        f"[{address}]:443",
        f"[{address.exploded}]:8080",
        f"[{address}%eth0]:80",
        f"{address}%3",
    ]


@given(ipv6_network, host, host)
def test_every_address_of_one_64_is_one_key(
    network: int, first: int, second: int
) -> None:
    a, b = in_network(network, first), in_network(network, second)
    if a.ipv4_mapped is None and b.ipv4_mapped is None:
        assert limit_key(a) == limit_key(b)
        assert peer_limit_key(f"[{a}]:1") == peer_limit_key(f"[{b}]") == limit_key(a)


@given(ipv6_network, ipv6_network, host, host)
def test_different_64s_are_different_keys(
    one: int, other: int, first: int, second: int
) -> None:
    a, b = in_network(one, first), in_network(other, second)
    if one != other and a.ipv4_mapped is None and b.ipv4_mapped is None:
        assert limit_key(a) != limit_key(b)


@given(ipv4, ipv4)
def test_ipv4_addresses_are_keys_of_their_own(
    a: ipaddress.IPv4Address, b: ipaddress.IPv4Address
) -> None:
    assert (limit_key(a) == limit_key(b)) == (a == b)
    assert peer_limit_key(f"{a}:5678") == limit_key(a) == str(a)


@given(ipv4)
def test_ipv4_mapped_ipv6_is_the_ipv4_address(address: ipaddress.IPv4Address) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    assert limit_key(mapped) == str(address)
    for spelling in spellings(mapped):
        assert peer_limit_key(spelling) == str(address), spelling


@given(ipv6)
def test_every_spelling_of_an_ipv6_address_is_one_key(
    address: ipaddress.IPv6Address,
) -> None:
    keys = {peer_limit_key(spelling) for spelling in spellings(address)}
    assert keys == {limit_key(address)}


@given(ipv6, ipv4)
def test_an_ipv6_key_never_equals_an_ipv4_key(
    six: ipaddress.IPv6Address, four: ipaddress.IPv4Address
) -> None:
    if six.ipv4_mapped is None:
        assert limit_key(six) != limit_key(four)


@pytest.mark.parametrize(
    ("peer", "key"),
    [
        ("192.0.2.1:5678", "192.0.2.1"),
        ("192.0.2.1", "192.0.2.1"),  # forwarded, no port
        ("[2001:db8::1]:5678", "2001:db8::/64"),
        ("[2001:db8::1]", "2001:db8::/64"),  # forwarded: the last group is not a port
        ("2001:DB8:0:0:0:0:0:2", "2001:db8::/64"),
        ("[2001:db8:0:1::1]", "2001:db8:0:1::/64"),
        ("[::ffff:198.51.100.7]:80", "198.51.100.7"),
        ("[fe80::1%eth0]:80", "fe80::/64"),
        ("not an address", "not an address"),
        ("x" * 200, "x" * 64),  # bounded
    ],
)
def test_peer_keys(peer: str, key: str) -> None:
    assert peer_limit_key(peer) == key
