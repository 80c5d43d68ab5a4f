"""Forwarding headers: believed from trusted proxies only, hostile lists and garbage never become the client."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawws.core.forwarded import MAX_HOPS, TrustedProxies, parse_address, resolve_client

PROXY = ipaddress.ip_address("10.0.0.5")
STRANGER = ipaddress.ip_address("203.0.113.9")
TRUSTED = TrustedProxies.parse("10.0.0.0/8, ::1")


def h(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode("latin-1")) for name, value in pairs]


def test_untrusted_peer_is_the_client_whatever_it_says() -> None:
    headers = h(
        ("X-Forwarded-For", "1.2.3.4"),
        ("Forwarded", "for=5.6.7.8;proto=https"),
        ("X-Forwarded-Proto", "https"),
    )
    client = resolve_client(STRANGER, headers, TRUSTED)
    assert (
        client.address == STRANGER and client.scheme == "http" and not client.forwarded
    )


def test_no_trusted_proxies_by_default() -> None:
    client = resolve_client(PROXY, h(("X-Forwarded-For", "1.2.3.4")), TrustedProxies())
    assert client.address == PROXY
    assert not TrustedProxies()


def test_x_forwarded_for_from_a_trusted_proxy() -> None:
    client = resolve_client(
        PROXY,
        h(("X-Forwarded-For", "198.51.100.7"), ("X-Forwarded-Proto", "https")),
        TRUSTED,
    )
    assert client.address == ipaddress.ip_address("198.51.100.7")
    assert (
        client.scheme == "https" and client.forwarded and client.host == "198.51.100.7"
    )


def test_spoofed_left_entries_are_not_believed() -> None:
    # The client wrote "1.1.1.1" itself; the trusted proxy appended the real address.
    client = resolve_client(
        PROXY, h(("X-Forwarded-For", "1.1.1.1, 198.51.100.7")), TRUSTED
    )
    assert client.address == ipaddress.ip_address("198.51.100.7")


def test_chain_of_trusted_proxies_is_walked() -> None:
    client = resolve_client(
        PROXY, h(("X-Forwarded-For", "198.51.100.7, 10.1.1.1, 10.2.2.2")), TRUSTED
    )
    assert client.address == ipaddress.ip_address("198.51.100.7")


def test_several_header_lines_join_in_order() -> None:
    headers = h(("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "198.51.100.7"))
    assert resolve_client(PROXY, headers, TRUSTED).address == ipaddress.ip_address(
        "198.51.100.7"
    )


def test_rfc7239_forwarded_wins_and_carries_proto() -> None:
    headers = h(
        ("X-Forwarded-For", "9.9.9.9"),
        (
            "Forwarded",
            'for=1.1.1.1, for="[2001:db8:cafe::17]:4711";proto=https;by=10.0.0.5',
        ),
    )
    client = resolve_client(PROXY, headers, TRUSTED)
    assert client.address == ipaddress.ip_address("2001:db8:cafe::17")
    assert client.scheme == "https" and client.host == "[2001:db8:cafe::17]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("192.0.2.1:8080", "192.0.2.1"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ('"[2001:db8::1]:443"', "2001:db8::1"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
        ("unknown", None),
        ("_hidden", None),
        ("", None),
        ("[2001:db8::1", None),
        ("[2001:db8::1]x", None),
        ("[fe80::1%eth0]", None),
        ("192.0.2.1:http", None),
        ("300.1.1.1", None),
        ("a" * 5000, None),
    ],
)
def test_address_forms(text: str, expected: str | None) -> None:
    address = parse_address(text)
    assert address == (ipaddress.ip_address(expected) if expected else None)


def test_garbage_leaves_the_last_real_address() -> None:
    for junk in (
        "not-an-ip",
        "unknown",
        "<script>",
        "1.2.3.4.5",
        "'; DROP TABLE users; --",
        "\x00\xff",
    ):
        client = resolve_client(
            PROXY,
            h(("X-Forwarded-For", f"1.1.1.1, {junk}"), ("X-Forwarded-Proto", "https")),
            TRUSTED,
        )
        assert client.address == PROXY, junk
        assert client.scheme == "https"


def test_bogus_proto_is_ignored() -> None:
    client = resolve_client(
        PROXY,
        h(("X-Forwarded-For", "198.51.100.7"), ("X-Forwarded-Proto", "gopher")),
        TRUSTED,
    )
    assert client.scheme == "http"


def test_hundreds_of_entries_only_the_right_end_is_read() -> None:
    trusted_chain = ", ".join(f"10.0.{i // 250}.{i % 250}" for i in range(500))
    client = resolve_client(
        PROXY, h(("X-Forwarded-For", "198.51.100.7, " + trusted_chain)), TRUSTED
    )
    # More trusted hops than MAX_HOPS: the walk stops at the last one it looked at, never at the far left.
    assert client.address is not None and TRUSTED.trusts(client.address)
    spoof = ", ".join(f"1.1.{i // 250}.{i % 250}" for i in range(800))
    client = resolve_client(
        PROXY, h(("X-Forwarded-For", spoof + ", 198.51.100.7")), TRUSTED
    )
    assert client.address == ipaddress.ip_address("198.51.100.7")


def test_walk_is_bounded() -> None:
    chain = ", ".join(["10.9.9.9"] * (MAX_HOPS + 5))
    client = resolve_client(
        PROXY, h(("X-Forwarded-For", "198.51.100.7, " + chain)), TRUSTED
    )
    assert client.address == ipaddress.ip_address("10.9.9.9")


def test_ipv4_mapped_peer_matches_ipv4_network() -> None:
    mapped = ipaddress.ip_address("::ffff:10.0.0.5")
    assert TRUSTED.trusts(mapped)
    assert resolve_client(
        mapped, h(("X-Forwarded-For", "198.51.100.7")), TRUSTED
    ).address == ipaddress.ip_address("198.51.100.7")


def test_trust_everyone_and_bad_entries() -> None:
    assert TrustedProxies.parse("*").trusts(STRANGER)
    with pytest.raises(ValueError, match="not an address"):
        TrustedProxies.parse("10.0.0.1, localhost")
    assert TrustedProxies.parse("[::1]").trusts(ipaddress.ip_address("::1"))


_entry = st.one_of(
    st.ip_addresses().map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]:{a.packed[0]}"),
    st.text(max_size=30),
)


@given(st.lists(_entry, max_size=60), st.text(max_size=40), st.booleans())
def test_any_header_gives_a_real_address_never_text(
    entries: list[str], proto: str, trusted_peer: bool
) -> None:
    peer = PROXY if trusted_peer else STRANGER
    xff = ",".join(entries).encode("utf-8", "surrogatepass")
    headers = [
        (b"x-forwarded-for", xff),
        (b"x-forwarded-proto", proto.encode("utf-8", "surrogatepass")),
    ]
    client = resolve_client(peer, headers, TRUSTED)
    assert client.scheme in ("http", "https")
    assert client.address is not None
    if not trusted_peer:
        assert client.address == STRANGER
    else:
        parsed = [parse_address(entry) for entry in xff.decode("latin-1").split(",")]
        assert client.address == PROXY or client.address in parsed


@given(st.text(max_size=300))
def test_forwarded_garbage_never_raises(text: str) -> None:
    headers = [(b"forwarded", text.encode("utf-8"))]
    client = resolve_client(PROXY, headers, TRUSTED)
    assert client.address is not None
