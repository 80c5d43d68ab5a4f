"""Room rights in outside tokens (``rawws_rooms``): the strict parser, the pattern matcher, and which
tokens they are honoured in (``rawws.accounts.room_rights``, ``Tokens.verify``). No I/O."""

from __future__ import annotations

import fnmatch
import time

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawws.accounts.room_rights import (
    CLAIM,
    MAX_PATTERN_CHARS,
    MAX_PATTERNS,
    RoomRights,
    parse_room_rights,
    room_matches,
)
from rawws.accounts.tokens import ACCESS, TICKET, PublicKey, Tokens, TokenSettings
from rawws.apps import keys
from rawws.errors import AuthError
from tests.support.helpers import SECRET, claims, rsa_private_pem, rsa_public_pem

ROOM_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_.~-"
names = st.text(ROOM_CHARS, min_size=1, max_size=32)
patterns = st.one_of(
    names, st.text(ROOM_CHARS, max_size=MAX_PATTERN_CHARS - 1).map(lambda p: p + "*")
)


def tokens() -> Tokens:
    settings = TokenSettings(
        secret=SECRET, public_key=PublicKey("RS256", rsa_public_pem())
    )
    return Tokens(settings)


def outside(**extra: object) -> str:
    payload = claims(time.time(), typ=None, sub="grace", **extra)
    return jwt.encode(payload, rsa_private_pem(), algorithm="RS256")


# -- the matcher --------------------------------------------------------------------------


@given(st.lists(patterns, max_size=8), names)
def test_a_room_matches_as_a_glob_with_one_trailing_star(
    listed: list[str], room: str
) -> None:
    """Our patterns have no glob characters but a trailing '*': fnmatch is an independent model."""
    expected = any(fnmatch.fnmatchcase(room, pattern) for pattern in listed)
    assert room_matches(listed, room) is expected
    assert keys.room_matches(listed, room) is expected  # the API keys use the same one


def test_room_matches_examples() -> None:
    assert room_matches(["lobby", "team.*"], "team.abcdefgh")
    assert room_matches(["*"], "anything")
    assert not room_matches(["lobby"], "lobby2")
    assert not room_matches(["team.*"], "team")
    assert not room_matches([], "lobby")


# -- the parser ---------------------------------------------------------------------------


@given(
    st.lists(patterns, max_size=MAX_PATTERNS), st.lists(patterns, max_size=MAX_PATTERNS)
)
def test_rights_round_trip_through_their_claim(
    join: list[str], publish: list[str]
) -> None:
    rights = parse_room_rights({"join": join, "publish": publish})
    assert rights == RoomRights(tuple(join), tuple(publish))
    assert parse_room_rights(rights.as_claim()) == rights


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["join", "publish", "other"]), inner, max_size=3
        )
    ),
    max_leaves=12,
)


@given(json_values)
def test_any_claim_parses_to_valid_rights_or_is_refused(value: object) -> None:
    try:
        rights = parse_room_rights(value)
    except ValueError:
        return
    assert isinstance(value, dict) and set(value) <= {"join", "publish"}
    for pattern in rights.join + rights.publish:
        assert 0 < len(pattern) <= MAX_PATTERN_CHARS
        assert "*" not in pattern[:-1]
        assert set(pattern.rstrip("*")) <= set(ROOM_CHARS)


@pytest.mark.parametrize(
    "value",
    [
        None,
        [],
        "lobby",
        {"join": "lobby"},
        {"join": ["lobby"], "write": ["x"]},
        {"join": [""]},
        {"join": ["lo*by"]},
        {"join": ["**"]},
        {"join": ["Lobby"]},
        {"join": [7]},
        {"publish": ["a" * (MAX_PATTERN_CHARS + 1)]},
        {"join": ["r"] * (MAX_PATTERNS + 1)},
    ],
)
def test_a_malformed_claim_is_refused(value: object) -> None:
    with pytest.raises(ValueError):
        parse_room_rights(value)


def test_the_bounds_themselves_are_accepted() -> None:
    rights = parse_room_rights(
        {"join": ["r"] * MAX_PATTERNS, "publish": ["a" * (MAX_PATTERN_CHARS - 1) + "*"]}
    )
    assert len(rights.join) == MAX_PATTERNS
    assert parse_room_rights({}) == RoomRights(
        (), ()
    )  # present and empty: nothing at all


# -- which tokens carry them ---------------------------------------------------------------


def test_an_outside_token_carries_its_claim_and_one_without_has_no_limits() -> None:
    claim = {"join": ["lobby", "team.*"], "publish": ["team.*"]}
    limited = tokens().verify(outside(**{CLAIM: claim}))
    assert limited.user == "ext:grace"
    assert limited.rooms == RoomRights(("lobby", "team.*"), ("team.*",))
    assert tokens().verify(outside()).rooms is None


@pytest.mark.parametrize("claim", [None, {"join": ["Lobby"]}, {"join": "lobby"}, []])
def test_an_outside_token_with_a_malformed_claim_is_401(claim: object) -> None:
    payload = claims(time.time(), typ=None, sub="grace")
    payload[CLAIM] = claim  # present, even as JSON null
    token = jwt.encode(payload, rsa_private_pem(), algorithm="RS256")
    with pytest.raises(AuthError) as refused:
        tokens().verify(token)
    assert refused.value.status == 401


def test_our_own_access_token_never_honours_the_claim() -> None:
    payload = claims(time.time(), sub="ada")
    payload[CLAIM] = {"join": ["nothing"]}
    token = jwt.encode(payload, SECRET, algorithm="HS256")
    assert tokens().verify(token, ACCESS).rooms is None


def test_a_ticket_carries_the_rights_of_the_outside_token_that_bought_it() -> None:
    issuer = tokens()
    rights = RoomRights(("lobby",), ())
    ticket, identity = issuer.issue("ext:grace", TICKET, rooms=rights)
    assert identity.rooms == rights
    assert issuer.verify(ticket, TICKET).rooms == rights
    plain, _ = issuer.issue("ext:grace", TICKET)
    assert issuer.verify(plain, TICKET).rooms is None
    with pytest.raises(ValueError):  # never for a local user, never in an access token
        issuer.issue("ada", TICKET, rooms=rights)
    with pytest.raises(ValueError):
        issuer.issue("ext:grace", ACCESS, rooms=rights)


def test_a_local_users_ticket_with_the_claim_is_refused_not_read_as_open() -> None:
    payload = claims(time.time(), sub="ada", typ=TICKET)
    payload[CLAIM] = {"join": ["lobby"]}
    token = jwt.encode(payload, SECRET, algorithm="HS256")
    with pytest.raises(AuthError):
        tokens().verify(token, TICKET)
