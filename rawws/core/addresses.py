"""One key per client for every per-address limit, computed one way.

A limit keyed by the address text as it arrived is a limit per spelling: an
IPv6 end site is given a /64 at least (RFC 6177) and picks any of its 2^64
addresses at will (RFC 8981), so a key per /128 hands one attacker 2^64
buckets, and ``2001:DB8::1`` and ``2001:db8:0:0:0:0:0:1`` would be two more.
So every limit (logins, registrations, open WebSockets) keys its client through
``limit_key``:

* an IPv6 address → its /64 network (``2001:db8::/64``), zone id dropped;
* an IPv4-mapped IPv6 address (``::ffff:192.0.2.1``, what a dual-stack socket
  reports for an IPv4 client) → that IPv4 address;
* an IPv4 address → itself (a /32: NAT puts whole offices behind one address
  already; a wider IPv4 key would lump strangers together).

The key is the network or address in ``ipaddress``'s canonical text, so any
spelling of one client gives the same string.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from rawws.core.forwarded import parse_address

IPV6_LIMIT_PREFIX = 64  # the smallest block an IPv6 end site is given
MAX_UNPARSED_KEY_CHARS = 64  # a peer that is not an IP address (a Unix socket) keys as its text, this long at most
#: Client hosts whose key is remembered: every upgrade asks, and few clients make most of them.
HOST_KEYS_CACHED = 4096


def limit_key(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The limit key of ``address``: IPv4 as itself, IPv4-mapped IPv6 as its IPv4, IPv6 as its /64."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        network = int(address) >> (128 - IPV6_LIMIT_PREFIX) << (128 - IPV6_LIMIT_PREFIX)
        return str(ipaddress.IPv6Network((network, IPV6_LIMIT_PREFIX)))
    return str(address)


def peer_limit_key(peer: str) -> str:
    """The limit key of a request's peer as ``Request.peer`` writes it.

    ``"192.0.2.1:5678"``, ``"[2001:db8::1]:5678"``, a forwarded ``"[2001:db8::1]"``
    or ``"192.0.2.1"``, a bare ``"2001:db8::1"``; a zone id (``%eth0``) is dropped,
    since it names our interface, not the client. Anything else (not an IP
    address) keys as its own text, cut to ``MAX_UNPARSED_KEY_CHARS``.
    """
    # ``host:port`` (the socket's own peer, the usual case): the key is the host's, and a client's
    # host repeats while its port does not, so the host's key is parsed once and remembered.
    host, colon, port = peer.rpartition(":")
    if colon and port.isdigit() and (":" not in host or host.startswith("[")):
        key = _host_key(host)
        if key is not None:
            return key
    address = parse_address(_without_zone(peer))
    if address is None:
        return peer[:MAX_UNPARSED_KEY_CHARS]
    return limit_key(address)


@lru_cache(maxsize=HOST_KEYS_CACHED)
def _host_key(host: str) -> str | None:
    """The limit key of ``host`` (an address, IPv6 in brackets), or ``None`` when it is not an IP address."""
    address = parse_address(_without_zone(host))
    return None if address is None else limit_key(address)


def _without_zone(peer: str) -> str:
    """``"[fe80::1%eth0]:80"`` → ``"[fe80::1]:80"``; ``"fe80::1%eth0"`` → ``"fe80::1"``."""
    zone = peer.find("%")
    if zone < 0:
        return peer
    end = peer.find("]", zone)
    return peer[:zone] + (peer[end:] if end >= 0 else "")
