"""The token check reads a JWS header's ``alg`` itself (cheaper than PyJWT's); garbage is still only ``AuthError``."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawws.accounts.tokens import AuthError, Tokens, TokenSettings

TOKENS = Tokens(TokenSettings(secret=b"s" * 40))


def segment(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=200)
)
def test_any_ascii_token_is_accepted_or_refused_with_auth_error(token: str):
    with pytest.raises(AuthError):
        TOKENS.verify(token)


@pytest.mark.parametrize(
    "header",
    [[], "HS256", 7, None, {"alg": "none"}, {"alg": "RS256"}, {"typ": "JWT"}],
)
def test_headers_that_are_not_an_accepted_algorithm_are_refused(header: object):
    good, _ = TOKENS.issue("ann")
    _, payload, signature = good.split(".")
    with pytest.raises(AuthError):
        TOKENS.verify(f"{segment(header)}.{payload}.{signature}")


def test_a_good_token_still_verifies():
    token, identity = TOKENS.issue("ann")
    assert TOKENS.verify(token).user == identity.user == "ann"
