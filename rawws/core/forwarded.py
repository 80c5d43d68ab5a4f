"""Who the client is behind a reverse proxy: ``X-Forwarded-For``, ``Forwarded`` (RFC 7239), ``X-Forwarded-Proto``.

Those headers are only words a peer says, so they are believed from trusted
peers alone (``--forwarded-allow-ips``, the meaning uvicorn and gunicorn give
it): from anyone else they are ignored and the TCP peer is the client.

From a trusted peer the address list is walked from the right (the entry the
nearest proxy appended) past every address that is itself a trusted proxy; the
first one that is not is the client. An entry that is not an IP address
(garbage, ``unknown``, an obfuscated RFC 7239 name) ends the walk, and the
last address known to be real wins, so a line of junk never becomes "the
client" in a log or a rate-limit key. The walk looks at no more than
``MAX_HOPS`` entries, however long the list.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rawws.core.http import Request

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_HOPS = 32  # forwarded entries examined per request; the rest of a longer list is never parsed
MAX_HEADER_CHARS = (
    8 * 1024
)  # of one forwarding header kept for parsing (the head is bounded anyway)
SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


class TrustedProxies:
    """The peers whose forwarding headers are believed: addresses, CIDR networks, or ``*`` for every peer."""

    __slots__ = ("_networks", "_everyone")

    def __init__(self, entries: Iterable[str] = ()) -> None:
        networks: list[IPNetwork] = []
        everyone = False
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            if entry == "*":
                everyone = True
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                raise ValueError(f"not an address or network: {entry!r}") from None
        self._networks = tuple(networks)
        self._everyone = everyone

    @classmethod
    def parse(cls, text: str) -> TrustedProxies:
        """From a comma list such as ``"127.0.0.1, 10.0.0.0/8, ::1"``."""
        return cls(text.split(","))

    def __bool__(self) -> bool:
        return self._everyone or bool(self._networks)

    def trusts(self, address: IPAddress | None) -> bool:
        if address is None:
            return False
        if self._everyone:
            return True
        if (
            isinstance(address, ipaddress.IPv6Address)
            and address.ipv4_mapped is not None
        ):
            address = address.ipv4_mapped
        return any(
            address.version == net.version and address in net for net in self._networks
        )


@dataclass(frozen=True, slots=True)
class Client:
    """The client as far as we can believe: its address, and the scheme it used to reach the first proxy."""

    address: IPAddress | None
    scheme: str
    forwarded: bool  # the address came from a header, not the TCP peer

    @property
    def host(self) -> str:
        """The address as logs show it: ``192.0.2.1``, ``[2001:db8::1]`` (empty when unknown)."""
        if self.address is None:
            return ""
        return f"[{self.address}]" if self.address.version == 6 else str(self.address)


def parse_address(text: str) -> IPAddress | None:
    """One address as forwarding headers write it, with or without a port and brackets; ``None`` if not one.

    Accepts ``192.0.2.1``, ``192.0.2.1:8080``, ``2001:db8::1``, ``[2001:db8::1]``,
    ``[2001:db8::1]:8080`` and the same inside RFC 7239 quotes.
    """
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1].strip()
    if not text or len(text) > 64:
        return None
    if text[0] == "[":
        end = text.find("]")
        if end < 0:
            return None
        rest = text[end + 1 :]
        if rest and not (rest[0] == ":" and rest[1:].isdigit()):
            return None
        text = text[1:end]
        if "%" in text:  # a zone id says nothing about a remote client
            return None
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return None
    if text.count(":") == 1:
        text, _, port = text.partition(":")
        if not port.isdigit():
            return None
    if "%" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _header_values(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> str | None:
    """Every value of header ``name`` joined by commas (RFC 9110 §5.3), bounded; ``None`` when absent."""
    values = [value for key, value in headers if key == name]
    if not values:
        return None
    joined = b",".join(values)[
        -MAX_HEADER_CHARS:
    ]  # the right end is what the nearest proxy wrote
    return joined.decode("latin-1")


def _rightmost(text: str, limit: int) -> list[str]:
    """The last ``limit`` comma-separated items of ``text``, right first."""
    items = text.rsplit(",", limit)
    if len(items) > limit:
        items = items[1:]
    return [item.strip() for item in reversed(items)]


def _forwarded_elements(text: str) -> list[dict[str, str]]:
    """RFC 7239 elements, right first: ``for=…;proto=…`` pairs (names lower-cased, values as written)."""
    elements: list[dict[str, str]] = []
    for element in _rightmost(text, MAX_HOPS):
        pairs: dict[str, str] = {}
        for pair in element.split(";"):
            name, sep, value = pair.partition("=")
            if sep:
                pairs[name.strip().lower()] = value.strip()
        elements.append(pairs)
    return elements


def _scheme(text: str | None) -> str | None:
    if text is None:
        return None
    return SCHEMES.get(text.strip().strip('"').lower())


def resolve_client(
    peer: IPAddress | None,
    headers: Sequence[tuple[bytes, bytes]],
    trusted: TrustedProxies,
    *,
    scheme: str = "http",
) -> Client:
    """The client of a request that arrived from ``peer`` over ``scheme`` (``"https"`` when TLS ends here).

    ``headers`` are h11's: lower-case names, raw values. ``Forwarded`` wins over
    ``X-Forwarded-For`` when a trusted peer sends both (it is the standard).
    """
    direct = Client(peer, scheme, forwarded=False)
    if not trusted.trusts(peer):
        return direct
    hops: list[tuple[IPAddress | None, str | None]]
    forwarded = _header_values(headers, b"forwarded")
    if forwarded is not None:
        hops = [
            (parse_address(element.get("for", "")), _scheme(element.get("proto")))
            for element in _forwarded_elements(forwarded)
        ]
    else:
        xff = _header_values(headers, b"x-forwarded-for")
        if xff is None:
            hops = []
        else:
            hops = [(parse_address(item), None) for item in _rightmost(xff, MAX_HOPS)]
        proto = _header_values(headers, b"x-forwarded-proto")
        if proto is not None and hops:
            hops[0] = (hops[0][0], _scheme(_rightmost(proto, 1)[0]))
        elif proto is not None:
            return Client(
                peer, _scheme(_rightmost(proto, 1)[0]) or scheme, forwarded=False
            )
    client = direct
    for address, hop_scheme in hops:
        if (
            address is None
        ):  # junk: the last real address stands, the scheme its proxy saw counts
            client = Client(
                client.address, hop_scheme or client.scheme, client.forwarded
            )
            break
        client = Client(address, hop_scheme or client.scheme, forwarded=True)
        if not trusted.trusts(address):
            break
    return client


def forwarded_request(request: Request, trusted: TrustedProxies) -> Request:
    """``request`` as its client made it, when a trusted proxy says who that is (else as it came)."""
    client = resolve_client(
        parse_address(request.peer), request.headers, trusted, scheme=request.scheme
    )
    if not client.forwarded and client.scheme == request.scheme:
        return request
    return dataclasses.replace(
        request,
        peer=client.host if client.forwarded else request.peer,
        scheme=client.scheme,
    )
