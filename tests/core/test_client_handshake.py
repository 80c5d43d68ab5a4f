"""The client's opening handshake (RFC 6455 §4.1, RFC 7692 §7.1), bytes in and out, no socket."""

from __future__ import annotations

import pytest

from rawws.core.client_handshake import (
    ClientHandshake,
    deflate_from_answer,
    new_key,
    parse_uri,
)
from rawws.core.events import MessageReceived
from rawws.core.extensions import PerMessageDeflate
from rawws.core.headers import parse_extension
from rawws.core.protocol import WebSocket
from rawws.errors import HandshakeRejected, InvalidHandshake, InvalidURI
from tests.support.helpers import ACCEPT, KEY


def handshake(
    url: str = "ws://server.example.com/chat", **options: object
) -> ClientHandshake:
    options.setdefault("key", KEY)
    return ClientHandshake(parse_uri(url), **options)  # type: ignore[arg-type]


def answer(
    *extra: str, status: bytes = b"101 Switching Protocols", accept: str = ACCEPT
) -> bytes:
    lines = [
        b"HTTP/1.1 " + status,
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Accept: " + accept.encode(),
        *(line.encode("latin-1") for line in extra),
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def failure(hs: ClientHandshake, data: bytes) -> InvalidHandshake:
    with pytest.raises(InvalidHandshake) as info:
        hs.receive_data(data)
    return info.value


# -- the request ---------------------------------------------------------------------------


def test_request_is_an_rfc_6455_upgrade_offering_deflate():
    """§4.1: GET, Host, Upgrade, Connection, a 16-byte key, version 13; RFC 7692 §7.1: our offer."""
    assert handshake().request() == (
        b"GET /chat HTTP/1.1\r\n"
        b"Host: server.example.com\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        b"User-Agent: rawws/0.1.0\r\n"
        b"\r\n"
    )


def test_request_carries_port_query_subprotocols_and_extra_headers_without_compression():
    hs = handshake(
        "wss://server.example.com:8443/ws?room=lobby",
        subprotocols=["rawws.v1", "chat"],
        extra_headers=[
            ("Authorization", "Bearer abc"),
            ("Origin", "https://example.com"),
        ],
        compression=False,
    )
    assert hs.request() == (
        b"GET /ws?room=lobby HTTP/1.1\r\n"
        b"Host: server.example.com:8443\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: rawws.v1, chat\r\n"
        b"User-Agent: rawws/0.1.0\r\n"
        b"Authorization: Bearer abc\r\n"
        b"Origin: https://example.com\r\n"
        b"\r\n"
    )


def test_each_handshake_gets_a_fresh_random_16_byte_key():
    import base64

    keys = {ClientHandshake(parse_uri("ws://h/")).key for _ in range(20)}
    assert len(keys) == 20
    assert all(len(base64.b64decode(key)) == 16 for key in keys)
    assert len(base64.b64decode(new_key())) == 16


def test_headers_the_handshake_owns_cannot_be_overridden():
    with pytest.raises(ValueError, match="Sec-WebSocket-Key"):
        handshake(extra_headers=[("Sec-WebSocket-Key", KEY)])


@pytest.mark.parametrize(
    ("url", "host", "port", "target", "host_header"),
    [
        ("ws://example.com", "example.com", 80, "/", "example.com"),
        ("wss://example.com/a/b?c=d", "example.com", 443, "/a/b?c=d", "example.com"),
        ("ws://127.0.0.1:9000/echo", "127.0.0.1", 9000, "/echo", "127.0.0.1:9000"),
        ("ws://[::1]:9000/", "::1", 9000, "/", "[::1]:9000"),
        ("ws://h/ä b", "h", 80, "/%C3%A4%20b", "h"),
    ],
)
def test_urls_split_into_socket_address_and_request_target(
    url, host, port, target, host_header
):
    uri = parse_uri(url)
    assert (uri.host, uri.port, uri.target, uri.host_header) == (
        host,
        port,
        target,
        host_header,
    )


@pytest.mark.parametrize(
    "url",
    ["http://example.com/", "example.com", "ws:///path", "ws://h/#frag", "ws://u:p@h/"],
)
def test_urls_that_are_not_websocket_urls_are_refused(url):
    with pytest.raises(InvalidURI):
        parse_uri(url)


def test_display_form_leaves_out_the_query():
    assert parse_uri("wss://h/ws?token=secret").display == "wss://h:443/ws"


# -- the answer ----------------------------------------------------------------------------


def test_a_valid_101_is_accepted():
    hs = handshake()
    hs.request()
    upgrade = hs.receive_data(answer())
    assert upgrade is not None
    assert upgrade.subprotocol is None
    assert upgrade.compression is None
    assert upgrade.extensions == []
    assert upgrade.trailing_data == b""


def test_the_answer_may_arrive_in_pieces():
    hs = handshake()
    hs.request()
    data = answer()
    assert hs.receive_data(data[:10]) is None
    assert hs.receive_data(data[10:]) is not None


def test_the_101_and_the_first_frame_in_one_read_keep_the_frame():
    """The server may send its first frame right behind the 101: it must reach the WebSocket."""
    hs = handshake(max_message_bytes=1000)
    hs.request()
    upgrade = hs.receive_data(answer() + b"\x81\x05hello\x89\x00")
    assert upgrade is not None
    assert upgrade.trailing_data == b"\x81\x05hello\x89\x00"
    assert upgrade.extensions == [] and upgrade.max_message_bytes == 1000
    ws = WebSocket(
        client=True,
        extensions=upgrade.extensions,
        max_message_bytes=upgrade.max_message_bytes,
    )
    events = list(ws.receive_data(upgrade.trailing_data))
    assert MessageReceived("hello") in events


def test_wrong_sec_websocket_accept_fails():
    """§4.1 item 4: the accept value must be base64(SHA-1(key + GUID))."""
    hs = handshake()
    hs.request()
    assert "Sec-WebSocket-Accept" in str(
        failure(hs, answer(accept="x3JJHMbDL1EzLkh9GBhXDw=="))
    )


def test_missing_sec_websocket_accept_fails():
    hs = handshake()
    hs.request()
    data = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    assert "Sec-WebSocket-Accept" in str(failure(hs, data))


def test_missing_upgrade_header_fails():
    """§4.1 item 2: no ``Upgrade: websocket`` in the 101."""
    hs = handshake()
    hs.request()
    data = f"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
    assert "Upgrade" in str(failure(hs, data.encode()))


def test_upgrade_to_another_protocol_fails():
    hs = handshake()
    hs.request()
    assert "Upgrade" in str(
        failure(hs, answer().replace(b"Upgrade: websocket", b"Upgrade: h2c"))
    )


def test_missing_connection_upgrade_fails():
    """§4.1 item 3."""
    hs = handshake()
    hs.request()
    data = f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
    assert "Connection" in str(failure(hs, data.encode()))


def test_status_200_instead_of_101_is_a_rejection_with_its_body():
    hs = handshake()
    hs.request()
    error = failure(
        hs,
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    )
    assert isinstance(error, HandshakeRejected)
    assert (error.status, error.reason, error.body) == (200, "OK", b"hello")
    assert error.header("Content-Type") == "text/plain"


def test_401_keeps_status_headers_and_body():
    hs = handshake()
    hs.request()
    data = (
        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: 12\r\n\r\n"
        b"token needed"
    )
    assert hs.receive_data(data[:40]) is None
    error = failure(hs, data[40:])
    assert isinstance(error, HandshakeRejected)
    assert error.status == 401
    assert error.header("www-authenticate") == "Bearer"
    assert error.body == b"token needed"
    assert "401" in str(error)


def test_rejection_body_ending_with_the_connection_is_read_to_eof():
    hs = handshake()
    hs.request()
    assert (
        hs.receive_data(b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\nno entry")
        is None
    )
    with pytest.raises(HandshakeRejected) as info:
        hs.receive_eof()
    assert (info.value.status, info.value.body) == (403, b"no entry")


def test_connection_closed_before_any_answer_fails():
    hs = handshake()
    hs.request()
    assert hs.receive_data(b"HTTP/1.1 10") is None
    with pytest.raises(InvalidHandshake, match="before answering"):
        hs.receive_eof()


def test_garbage_instead_of_http_fails():
    hs = handshake()
    hs.request()
    with pytest.raises(InvalidHandshake, match="malformed"):
        hs.receive_data(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")


# -- subprotocols ----------------------------------------------------------------------------


def test_the_chosen_subprotocol_is_reported():
    hs = handshake(subprotocols=["rawws.v1", "chat"])
    hs.request()
    upgrade = hs.receive_data(answer("Sec-WebSocket-Protocol: chat"))
    assert upgrade is not None and upgrade.subprotocol == "chat"


def test_a_subprotocol_we_did_not_offer_fails():
    """§4.1 item 6."""
    hs = handshake(subprotocols=["rawws.v1"])
    hs.request()
    assert "did not offer" in str(failure(hs, answer("Sec-WebSocket-Protocol: other")))


def test_a_subprotocol_when_we_offered_none_fails():
    hs = handshake()
    hs.request()
    assert "did not offer" in str(failure(hs, answer("Sec-WebSocket-Protocol: chat")))


def test_two_subprotocols_fail():
    hs = handshake(subprotocols=["a", "b"])
    hs.request()
    assert "several" in str(failure(hs, answer("Sec-WebSocket-Protocol: a, b")))


# -- extensions ---------------------------------------------------------------------------------


def test_plain_permessage_deflate_is_accepted():
    hs = handshake()
    hs.request()
    upgrade = hs.receive_data(answer("Sec-WebSocket-Extensions: permessage-deflate"))
    assert upgrade is not None
    assert upgrade.compression == "permessage-deflate"
    (deflate,) = [e for e in upgrade.extensions if isinstance(e, PerMessageDeflate)]
    assert deflate.enabled()


def test_deflate_parameters_configure_the_extension():
    hs = handshake(max_message_bytes=4096)
    hs.request()
    upgrade = hs.receive_data(
        answer(
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
            "client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12"
        )
    )
    assert upgrade is not None
    deflate = upgrade.extensions[0]
    assert isinstance(deflate, PerMessageDeflate)
    assert deflate.server_no_context_takeover and deflate.client_no_context_takeover
    assert (deflate.server_max_window_bits, deflate.client_max_window_bits) == (10, 12)
    assert deflate.max_message_bytes == 4096


def test_an_extension_we_did_not_offer_fails():
    """RFC 6455 §4.1 item 5: only extensions from our offer may be in use."""
    hs = handshake()
    hs.request()
    assert "did not offer" in str(
        failure(hs, answer("Sec-WebSocket-Extensions: x-webkit-deflate-frame"))
    )


def test_deflate_when_we_offered_no_compression_fails():
    hs = handshake(compression=False)
    hs.request()
    assert "did not offer" in str(
        failure(hs, answer("Sec-WebSocket-Extensions: permessage-deflate"))
    )


def test_deflate_accepted_twice_fails():
    hs = handshake()
    hs.request()
    error = failure(
        hs, answer("Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate")
    )
    assert "more than once" in str(error)


@pytest.mark.parametrize(
    ("params", "complaint"),
    [
        ("foo=1", "was not offered"),  # §7.1: an unknown parameter
        ("server_no_context_takeover; server_no_context_takeover", "repeated"),
        ("client_no_context_takeover=1", "takes no value"),
        (
            "server_max_window_bits",
            "not a window size",
        ),  # a response must give the value
        ("client_max_window_bits", "not a window size"),
        ("server_max_window_bits=7", "not a window size"),
        ("server_max_window_bits=16", "not a window size"),
        ("client_max_window_bits=010", "not a window size"),
        ("client_max_window_bits=8", "zlib"),  # legal, but we cannot honour it
    ],
)
def test_deflate_parameters_rfc_7692_forbids_fail(params, complaint):
    hs = handshake()
    hs.request()
    error = failure(
        hs, answer(f"Sec-WebSocket-Extensions: permessage-deflate; {params}")
    )
    assert complaint in str(error)


def test_server_window_of_8_bits_is_inflated_with_a_larger_window():
    """§7.1.2.1: the server may limit its own window, unasked; a 9-bit (or larger) inflater reads it."""
    deflate, negotiated = deflate_from_answer(
        parse_extension("permessage-deflate; server_max_window_bits=8")[1], None
    )
    assert negotiated == "permessage-deflate; server_max_window_bits=8"
    assert deflate.server_max_window_bits == 9


def test_quoted_window_bits_are_accepted():
    _, negotiated = deflate_from_answer(
        parse_extension('permessage-deflate; client_max_window_bits="10"')[1], None
    )
    assert negotiated == "permessage-deflate; client_max_window_bits=10"


# That this module imports no asyncio, socket or ssl is checked with the rest of core/ in test_layers.py.
