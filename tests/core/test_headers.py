"""Header value grammar (RFC 7230 §3.2.6, RFC 6455 §9.1): lists, parameters, quoted strings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawws.core.headers import (
    comma_list,
    parse_extension,
    shared_headers,
    split_outside_quotes,
    tokens,
)
from rawws.errors import HeaderSyntaxError

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
token = st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=12)


def test_repeated_lines_form_one_list():
    assert comma_list(["a, b", " c ,,", "d"]) == ["a", "b", "c", "d"]


def test_tokens_are_lower_cased():
    assert tokens(["keep-alive, Upgrade"]) == {"keep-alive", "upgrade"}


def test_commas_inside_quotes_do_not_split():
    assert split_outside_quotes('a; p="x,y", b', ",") == ['a; p="x,y"', " b"]


def test_extension_with_parameters():
    assert parse_extension(
        "permessage-deflate; client_max_window_bits; server_max_window_bits=10"
    ) == (
        "permessage-deflate",
        [("client_max_window_bits", None), ("server_max_window_bits", "10")],
    )


def test_quoted_parameter_value_is_unquoted():
    """RFC 6455 §9.1: a quoted-string value must be a token once unquoted."""
    assert parse_extension('permessage-deflate; server_max_window_bits="10"')[1] == [
        ("server_max_window_bits", "10")
    ]


@pytest.mark.parametrize("bad", ["", "; x", "a; b c", 'a; b="open', "a b", "a; =1"])
def test_malformed_extensions_are_refused(bad):
    with pytest.raises(HeaderSyntaxError):
        parse_extension(bad)


@given(token, st.lists(st.tuples(token, st.one_of(st.none(), token)), max_size=5))
def test_formatted_extension_parses_back(name, params):
    text = "; ".join([name] + [k if v is None else f"{k}={v}" for k, v in params])
    assert parse_extension(text) == (name.lower(), [(k.lower(), v) for k, v in params])


@given(st.lists(token, max_size=8))
def test_comma_list_round_trip(items):
    assert comma_list([", ".join(items)]) == items


@given(st.text(max_size=80))
def test_parser_never_raises_anything_but_syntax_errors(text):
    try:
        parse_extension(text)
    except HeaderSyntaxError:
        pass


_HEADER_BYTES = st.one_of(
    st.sampled_from([b"host", b"upgrade", b"websocket", b"13", b"authorization"]),
    st.binary(max_size=20),
)


@given(st.lists(st.tuples(_HEADER_BYTES, _HEADER_BYTES), max_size=12))
def test_shared_headers_are_the_same_headers(
    headers: list[tuple[bytes, bytes]],
) -> None:
    assert shared_headers(headers) == headers


def test_common_names_and_values_are_one_object_for_every_request() -> None:
    def request() -> list[
        tuple[bytes, bytes]
    ]:  # new bytes objects, as h11 makes per request
        def fresh(data: bytes) -> bytes:
            return bytes(bytearray(data))

        return [
            (fresh(b"sec-websocket-version"), fresh(b"13")),
            (fresh(b"x-custom"), fresh(b"its own")),
        ]

    made, again = request(), request()
    assert made[0][0] is not again[0][0]
    first, second = shared_headers(made), shared_headers(again)
    assert first[0][0] is second[0][0] and first[0][1] is second[0][1]
    assert first[1] == second[1]
