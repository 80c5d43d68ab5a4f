"""The server's opening handshake (RFC 6455 §4.2, RFC 7692 §5-7), request in, answer out, no socket."""

from __future__ import annotations

import pytest

from rawws.core.extensions import PerMessageDeflate
from rawws.core.handshake import (
    UpgradePolicy,
    accept_key,
    choose_subprotocol,
    decide_upgrade,
    deflate_answer,
    negotiate_deflate,
)
from rawws.core.headers import parse_extension
from rawws.core.http import Request
from rawws.errors import HttpError

POLICY = UpgradePolicy(max_message_bytes=1 << 20)

GOOD_HEADERS = [
    (b"host", b"server.example.com"),
    (b"upgrade", b"websocket"),
    (b"connection", b"Upgrade"),
    (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    (b"sec-websocket-version", b"13"),
]


def request(
    headers=GOOD_HEADERS, *, method="GET", version=b"1.1", replace=None, add=()
) -> Request:
    replace = replace or {}
    merged = [
        (k, replace.get(k, v)) for k, v in headers if replace.get(k, v) is not None
    ]
    return Request(
        method=method,
        path="/chat",
        query="",
        headers=merged + list(add),
        http_version=version,
    )


def refusal(req: Request, policy: UpgradePolicy = POLICY) -> HttpError:
    with pytest.raises(HttpError) as info:
        decide_upgrade(req, policy)
    return info.value


def test_accept_key_matches_rfc_example():
    """§1.3: key dGhlIHNhbXBsZSBub25jZQ== gives s3pPLMBiTxaQ9kYGzzhZRbK+xOo=."""
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_valid_request_is_accepted_with_the_101_headers():
    accepted = decide_upgrade(
        request(), UpgradePolicy(max_message_bytes=100, compression=False)
    )
    assert accepted.headers == [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
    ]
    assert accepted.subprotocol is None
    assert accepted.extensions == []
    assert accepted.max_message_bytes == 100


def test_header_tokens_are_case_insensitive_and_listed():
    """§4.2.1: Upgrade contains "websocket" and Connection contains "Upgrade", case-insensitively."""
    req = request(
        replace={b"upgrade": b"WebSocket", b"connection": b"keep-alive, UPGRADE"}
    )
    assert decide_upgrade(req, POLICY).headers[0] == ("Upgrade", "websocket")


@pytest.mark.parametrize(
    ("description", "req", "status"),
    [
        ("POST is not a handshake", request(method="POST"), 405),
        ("HTTP/1.0 cannot upgrade", request(version=b"1.0"), 400),
        ("Upgrade names another protocol", request(replace={b"upgrade": b"h2c"}), 400),
        (
            "Connection lacks upgrade",
            request(replace={b"connection": b"keep-alive"}),
            400,
        ),
        ("Connection missing", request(replace={b"connection": None}), 400),
        (
            "no version: not a valid handshake (§4.2.1 item 6)",
            request(replace={b"sec-websocket-version": None}),
            400,
        ),
        ("version 8", request(replace={b"sec-websocket-version": b"8"}), 426),
        ("two versions", request(replace={b"sec-websocket-version": b"13, 8"}), 426),
        ("no key", request(replace={b"sec-websocket-key": None}), 400),
        (
            "key not base64",
            request(replace={b"sec-websocket-key": b"not base64!!"}),
            400,
        ),
        (
            "key of 15 bytes",
            request(replace={b"sec-websocket-key": b"AAAAAAAAAAAAAAAAAAAA"}),
            400,
        ),
        (
            "two keys",
            request(add=[(b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ==")]),
            400,
        ),
        (
            "unterminated quote in Connection",
            request(replace={b"connection": b'Upgrade, "open'}),
            400,
        ),
        (
            "unterminated quote in Upgrade",
            request(replace={b"upgrade": b'websocket, "open'}),
            400,
        ),
        (
            "unterminated quote in Sec-WebSocket-Protocol",
            request(add=[(b"sec-websocket-protocol", b'a, "b')]),
            400,
        ),
    ],
)
def test_faulty_requests_get_the_status_the_rfc_asks_for(description, req, status):
    assert refusal(req).status == status, description


def test_plain_get_to_a_websocket_path_is_426_with_upgrade_header():
    """A browser address bar: no Upgrade at all. RFC 7231 §6.5.15: 426 names the protocol."""
    error = refusal(request(replace={b"upgrade": None, b"connection": None}))
    assert error.status == 426
    assert ("Upgrade", "websocket") in error.headers


def test_wrong_version_answer_names_version_13_and_the_upgrade():
    """§4.4: the answer lists the versions the server speaks; RFC 7231 §6.5.15: a 426 names the protocol."""
    error = refusal(request(replace={b"sec-websocket-version": b"7"}))
    assert ("Sec-WebSocket-Version", "13") in error.headers
    assert ("Upgrade", "websocket") in error.headers


def test_post_refusal_says_allow_get():
    assert ("Allow", "GET") in refusal(request(method="POST")).headers


# -- subprotocols (§4.2.2 /subprotocol/) -------------------------------------


def test_first_offered_supported_subprotocol_wins():
    assert (
        choose_subprotocol(["bearer.x", "rawws.v1", "other"], ("other", "rawws.v1"))
        == "rawws.v1"
    )
    assert choose_subprotocol(["a", "b"], ("c",)) is None


def test_subprotocol_is_echoed_in_the_101():
    policy = UpgradePolicy(max_message_bytes=10, subprotocols=("rawws.v1",))
    accepted = decide_upgrade(
        request(add=[(b"sec-websocket-protocol", b"bearer.abc, rawws.v1")]), policy
    )
    assert accepted.subprotocol == "rawws.v1"
    assert ("Sec-WebSocket-Protocol", "rawws.v1") in accepted.headers


# -- permessage-deflate (RFC 7692) ---------------------------------------------


def params(text: str):
    return parse_extension(text)[1]


NCT = "server_no_context_takeover; client_no_context_takeover"


@pytest.mark.parametrize(
    ("offer", "answer"),
    [
        # What browsers offer: both contexts dropped, both windows bounded to 12 bits.
        (
            "permessage-deflate; client_max_window_bits",
            f"permessage-deflate; {NCT}; server_max_window_bits=12; client_max_window_bits=12",
        ),
        ("permessage-deflate", f"permessage-deflate; {NCT}; server_max_window_bits=12"),
        (
            "permessage-deflate; server_max_window_bits=9",
            f"permessage-deflate; {NCT}; server_max_window_bits=9",
        ),
        (
            "permessage-deflate; client_max_window_bits=10; server_no_context_takeover",
            f"permessage-deflate; {NCT}; server_max_window_bits=12; client_max_window_bits=10",
        ),
        (
            'permessage-deflate; server_max_window_bits="15"',
            f"permessage-deflate; {NCT}; server_max_window_bits=12",
        ),
        (
            "permessage-deflate; client_no_context_takeover",
            f"permessage-deflate; {NCT}; server_max_window_bits=12",
        ),
    ],
)
def test_shared_mode_answers_no_context_takeover_both_ways(offer, answer):
    """RFC 7692 §7.1.1.1/§7.1.1.2: a server may add both no-context-takeover parameters unasked."""
    assert deflate_answer(params(offer)) == answer


@pytest.mark.parametrize(
    ("offer", "answer"),
    [
        ("permessage-deflate", "permessage-deflate"),
        (
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; client_max_window_bits=15",
        ),
        (
            "permessage-deflate; server_max_window_bits=9",
            "permessage-deflate; server_max_window_bits=9",
        ),
        (
            "permessage-deflate; client_max_window_bits=10; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
        ),
        (
            'permessage-deflate; server_max_window_bits="12"',
            "permessage-deflate; server_max_window_bits=12",
        ),
        (
            "permessage-deflate; client_no_context_takeover",
            "permessage-deflate; client_no_context_takeover",
        ),
    ],
)
def test_dedicated_mode_keeps_contexts_unless_asked(offer, answer):
    assert deflate_answer(params(offer), "dedicated", 15) == answer


def test_dedicated_mode_bounds_both_windows():
    offer = params("permessage-deflate; client_max_window_bits")
    assert deflate_answer(offer, "dedicated", 12) == (
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
    )


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; server_max_window_bits=8",  # zlib cannot: declined (§7.1.2.1 allows it)
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits",  # needs a value
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",  # §7.1: repeated
        "permessage-deflate; mystery_param",
    ],
)
def test_unacceptable_deflate_offers_are_declined(offer):
    assert deflate_answer(params(offer)) is None


def test_first_acceptable_offer_is_taken_and_settings_do_not_leak_between_offers():
    """An invalid first offer must not leave its window size on the extension we accept."""
    negotiated = negotiate_deflate(
        [
            "permessage-deflate; server_max_window_bits=9; bogus",
            "permessage-deflate; client_max_window_bits",
        ],
        max_message_bytes=1000,
    )
    assert negotiated is not None
    extension, answer = negotiated
    assert (
        answer
        == f"permessage-deflate; {NCT}; server_max_window_bits=12; client_max_window_bits=12"
    )
    assert extension.server_max_window_bits == 12
    assert extension.enabled()
    assert extension.shared and extension.shared_window_bits == 12


def test_window_bits_of_the_accepted_offer_are_applied():
    negotiated = negotiate_deflate(
        [
            "x-webkit-deflate-frame",
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=10",
        ],
        max_message_bytes=1000,
    )
    assert negotiated is not None
    extension, answer = negotiated
    assert (
        answer
        == f"permessage-deflate; {NCT}; server_max_window_bits=9; client_max_window_bits=10"
    )
    assert (extension.server_max_window_bits, extension.client_max_window_bits) == (
        9,
        10,
    )
    assert extension.server_no_context_takeover and extension.client_no_context_takeover
    assert extension.max_message_bytes == 1000


def test_dedicated_extension_has_no_shared_frames_and_a_bounded_memory_level():
    negotiated = negotiate_deflate(["permessage-deflate"], 1000, "dedicated", 12, 5)
    assert negotiated is not None
    extension, _ = negotiated
    assert not extension.shared and extension.shared_window_bits is None
    assert not extension.server_no_context_takeover and extension.memory_level == 5


def test_repeated_extension_header_lines_are_joined():
    req = request(
        add=[
            (b"sec-websocket-extensions", b"foo"),
            (b"sec-websocket-extensions", b"permessage-deflate"),
        ]
    )
    accepted = decide_upgrade(req, POLICY)
    assert (
        "Sec-WebSocket-Extensions",
        f"permessage-deflate; {NCT}; server_max_window_bits=12",
    ) in accepted.headers
    assert isinstance(accepted.extensions[0], PerMessageDeflate)
    assert accepted.max_message_bytes == POLICY.max_message_bytes


def test_no_acceptable_offer_means_no_extension_header():
    req = request(
        add=[
            (
                b"sec-websocket-extensions",
                b"permessage-deflate; server_max_window_bits=8",
            )
        ]
    )
    accepted = decide_upgrade(req, POLICY)
    assert not any(name == "Sec-WebSocket-Extensions" for name, _ in accepted.headers)


def test_compression_switched_off_ignores_offers():
    req = request(add=[(b"sec-websocket-extensions", b"permessage-deflate")])
    accepted = decide_upgrade(
        req, UpgradePolicy(max_message_bytes=10, compression=False)
    )
    assert not any(name == "Sec-WebSocket-Extensions" for name, _ in accepted.headers)
    accepted = decide_upgrade(
        req, UpgradePolicy(max_message_bytes=10, compression="off")
    )
    assert not any(name == "Sec-WebSocket-Extensions" for name, _ in accepted.headers)


def test_policy_refuses_an_unknown_mode_and_unbounded_windows():
    with pytest.raises(ValueError):
        UpgradePolicy(max_message_bytes=10, compression="sometimes")
    with pytest.raises(ValueError):
        UpgradePolicy(max_message_bytes=10, window_bits=8)


def test_malformed_extension_header_is_400():
    req = request(
        add=[(b"sec-websocket-extensions", b'permessage-deflate; a="unterminated')]
    )
    assert refusal(req).status == 400
