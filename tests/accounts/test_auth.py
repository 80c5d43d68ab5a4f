"""Unit tests for ``rawws.accounts.tokens`` (no I/O, a fake clock): JWTs verified the way RFC 8725 asks.

The attack corpus (built in ``tests/support/helpers.py``) is also presented by
``test_ws_auth.py``, token by token, to a real server, which must answer 401 before any 101.
"""

from __future__ import annotations

import functools
import string

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawws.accounts.tokens import (
    ACCESS,
    TICKET,
    Identity,
    PublicKey,
    Tokens,
    TokenSettings,
)
from rawws.accounts.upgrade_auth import (
    Credential,
    TicketLedger,
    WebSocketAuthenticator,
    bearer_token,
    check_origin,
    extract_credential,
)
from rawws.core import ratelimit
from rawws.core.http import Request
from rawws.core.ratelimit import RateLimiter
from rawws.errors import AuthError, HttpError
from tests.support.helpers import (
    AUDIENCE,
    NOW,
    SECRET,
    Attack,
    attack_corpus,
    b64url,
    claims,
    hs256,
    rsa_private_pem,
    rsa_public_pem,
    segment,
)

LEEWAY_S = 5
BASE64URL = string.ascii_letters + string.digits + "-_"


# -- a fake clock, another kind of key ------------------------------------------


class FakeClock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@functools.cache
def ed25519_keys() -> tuple[bytes, bytes]:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


# -- the attack corpus ---------------------------------------------------------


def confusion_settings(**overrides: object) -> TokenSettings:
    """HS256 with ``SECRET`` and, as the algorithm-confusion attack needs, an RS256 public key configured."""
    public_key = PublicKey("RS256", rsa_public_pem())
    return TokenSettings(secret=SECRET, public_key=public_key, **overrides)  # type: ignore[arg-type]


CORPUS = attack_corpus(SECRET, rsa_public_pem(), NOW)


# -- the corpus is refused -----------------------------------------------------


@pytest.mark.parametrize("attack", CORPUS, ids=lambda attack: attack.name)
def test_attack_corpus_is_refused_with_401(attack: Attack) -> None:
    tokens = Tokens(confusion_settings(), clock=FakeClock())
    with pytest.raises(AuthError) as refused:
        tokens.verify(attack.token, attack.kind)
    assert refused.value.status == 401
    assert (
        "WWW-Authenticate",
        'Bearer error="invalid_token"',
    ) in refused.value.headers  # RFC 6750 §3
    assert attack.token not in str(refused.value) or not attack.token


def test_the_corpus_is_not_refused_by_accident() -> None:
    """The corpus's valid twin verifies under the same settings: each attack fails for its own reason."""
    tokens = Tokens(confusion_settings(), clock=FakeClock())
    assert tokens.verify(hs256(claims(NOW))).user == "ada"
    assert (
        tokens.verify(hs256(claims(NOW, typ=TICKET, exp=int(NOW) + 30)), TICKET).user
        == "ada"
    )


def test_replayed_ticket_is_refused() -> None:
    clock = FakeClock()
    tokens, ledger = (
        Tokens(TokenSettings(secret=SECRET), clock=clock),
        TicketLedger(clock=clock),
    )
    ticket, _ = tokens.issue("ada", TICKET)
    ledger.spend(tokens.verify(ticket, TICKET))
    with pytest.raises(AuthError, match="already used"):
        ledger.spend(tokens.verify(ticket, TICKET))


def test_issued_access_token_and_ticket_do_not_stand_in_for_each_other() -> None:
    tokens = Tokens(TokenSettings(secret=SECRET), clock=FakeClock())
    access, _ = tokens.issue("ada", ACCESS)
    ticket, _ = tokens.issue("ada", TICKET)
    with pytest.raises(AuthError):
        tokens.verify(access, TICKET)
    with pytest.raises(AuthError):
        tokens.verify(ticket, ACCESS)


def test_a_ticket_opens_a_connection_that_lasts_as_long_as_the_access_token() -> None:
    """The ticket is for the next few seconds; the connection it opens ends with the access token that bought it."""
    clock = FakeClock()
    tokens = Tokens(
        TokenSettings(secret=SECRET, access_ttl_s=900, ticket_ttl_s=30), clock=clock
    )
    access, access_identity = tokens.issue("ada")
    ticket, ticket_identity = tokens.issue(
        "ada", TICKET, session_expires_at=access_identity.expires_at
    )
    assert ticket_identity.expires_at == int(NOW) + 30  # the ticket itself: 30 s
    assert (
        tokens.verify(ticket, TICKET).expires_at == access_identity.expires_at
    )  # what it opens: 15 min
    clock.advance(30 + LEEWAY_S + 1)
    with pytest.raises(AuthError, match="expired"):
        tokens.verify(ticket, TICKET)


def test_a_ticket_never_outlives_its_access_token() -> None:
    clock = FakeClock()
    tokens = Tokens(
        TokenSettings(secret=SECRET, access_ttl_s=10, ticket_ttl_s=30), clock=clock
    )
    _, access_identity = tokens.issue("ada")
    ticket, ticket_identity = tokens.issue(
        "ada", TICKET, session_expires_at=access_identity.expires_at
    )
    assert ticket_identity.expires_at == access_identity.expires_at == int(NOW) + 10
    assert tokens.verify(ticket, TICKET).expires_at == access_identity.expires_at
    clock.advance(10 + LEEWAY_S + 1)
    with pytest.raises(AuthError):
        tokens.verify(ticket, TICKET)


def test_session_expiry_claim_means_nothing_on_an_access_token() -> None:
    tokens = Tokens(TokenSettings(secret=SECRET), clock=FakeClock())
    token = hs256(claims(NOW, session_exp=int(NOW) + 10**6))
    assert tokens.verify(token).expires_at == int(NOW) + 600


# -- what is accepted ----------------------------------------------------------


def test_issued_access_token_verifies() -> None:
    clock = FakeClock()
    tokens = Tokens(TokenSettings(secret=SECRET, access_ttl_s=900), clock=clock)
    token, issued = tokens.issue("ada")
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    payload = jwt.decode(token, options={"verify_signature": False})
    assert {
        "sub",
        "exp",
        "iat",
        "iss",
        "aud",
        "jti",
    } <= payload.keys()  # the claims README "Accounts and tokens" requires, and the jti
    assert payload["exp"] - payload["iat"] == 900
    identity = tokens.verify(token)
    assert identity == Identity(
        "ada", float(issued.expires_at), issued.token_id, issued_at=issued.issued_at
    )
    assert identity.token_id


def test_expiry_follows_the_injected_clock_with_a_small_leeway() -> None:
    """RFC 7519 §4.1.4 with RFC 8725's "small leeway": judged by the clock the Tokens were given."""
    clock = FakeClock()
    tokens = Tokens(
        TokenSettings(secret=SECRET, access_ttl_s=60, leeway_s=LEEWAY_S), clock=clock
    )
    token, identity = tokens.issue("ada")
    clock.now = identity.expires_at + LEEWAY_S - 1
    assert tokens.verify(token).user == "ada"
    clock.now = identity.expires_at + LEEWAY_S + 1
    with pytest.raises(AuthError, match="expired"):
        tokens.verify(token)


def test_not_before_and_issued_at_follow_the_injected_clock() -> None:
    clock = FakeClock()
    tokens = Tokens(TokenSettings(secret=SECRET, leeway_s=LEEWAY_S), clock=clock)
    later = hs256(
        claims(NOW, iat=int(NOW) + 100, nbf=int(NOW) + 100, exp=int(NOW) + 700)
    )
    with pytest.raises(AuthError):
        tokens.verify(later)
    clock.advance(100)
    assert tokens.verify(later).user == "ada"


def test_token_without_typ_counts_as_an_access_token() -> None:
    """An outside provider does not know our ``typ``: its tokens are access tokens, never tickets."""
    tokens = Tokens(TokenSettings(secret=SECRET), clock=FakeClock())
    token = hs256(claims(NOW, typ=None))
    assert tokens.verify(token, ACCESS).user == "ada"
    with pytest.raises(AuthError):
        tokens.verify(token, TICKET)


def test_audience_may_be_a_list_that_names_us() -> None:
    """RFC 7519 §4.1.3: ``aud`` is a string or an array of strings."""
    tokens = Tokens(TokenSettings(secret=SECRET), clock=FakeClock())
    assert tokens.verify(hs256(claims(NOW, aud=["other", AUDIENCE]))).user == "ada"


def idp_token(
    private_pem: bytes, algorithm: str, now: float = NOW, **overrides: object
) -> str:
    """A token from an "outside identity provider": its own key, our issuer and audience, no ``typ``."""
    return jwt.encode(
        claims(now, typ=None, sub="grace", **overrides),
        private_pem,
        algorithm=algorithm,
    )


@pytest.mark.parametrize("algorithm", ["RS256", "EdDSA"])
def test_outside_identity_provider_token_accepted_with_its_public_key(
    algorithm: str,
) -> None:
    private, public = (
        (rsa_private_pem(), rsa_public_pem())
        if algorithm == "RS256"
        else ed25519_keys()
    )
    token = idp_token(private, algorithm)
    configured = Tokens(
        TokenSettings(secret=SECRET, public_key=PublicKey(algorithm, public)),
        clock=FakeClock(),
    )
    assert (
        configured.verify(token).user == "ext:grace"
    )  # the provider's grace, never the local account

    unconfigured = Tokens(TokenSettings(secret=SECRET), clock=FakeClock())
    with pytest.raises(AuthError, match="algorithm"):
        unconfigured.verify(token)


def test_outside_token_refused_under_another_key_or_algorithm() -> None:
    other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_public = other_rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = idp_token(rsa_private_pem(), "RS256")
    wrong_key = Tokens(
        TokenSettings(secret=SECRET, public_key=PublicKey("RS256", other_public)),
        clock=FakeClock(),
    )
    with pytest.raises(AuthError):
        wrong_key.verify(token)
    _, ed_public = ed25519_keys()
    wrong_algorithm = Tokens(
        TokenSettings(secret=SECRET, public_key=PublicKey("EdDSA", ed_public)),
        clock=FakeClock(),
    )
    with pytest.raises(AuthError, match="algorithm"):
        wrong_algorithm.verify(token)
    # The provider's tokens still obey every claim check.
    configured = Tokens(confusion_settings(), clock=FakeClock())
    with pytest.raises(AuthError):
        configured.verify(idp_token(rsa_private_pem(), "RS256", aud="someone-else"))
    with pytest.raises(AuthError):
        configured.verify(idp_token(rsa_private_pem(), "RS256", exp=int(NOW) - 60))


def test_settings_bind_keys_to_algorithms() -> None:
    with pytest.raises(ValueError):
        PublicKey("HS256", b"a shared secret is not a public key")
    with pytest.raises(ValueError):
        PublicKey("none", b"")
    with pytest.raises(ValueError):
        TokenSettings(secret=b"short")  # RFC 7518 §3.2: at least the hash's size


# -- property-based: nothing but AuthError, never an identity -------------------

TOKENS_UNDER_TEST = Tokens(confusion_settings(), clock=FakeClock())


def _verify_refuses(token: str, kind: str) -> None:
    try:
        TOKENS_UNDER_TEST.verify(token, kind)
    except AuthError:
        return
    raise AssertionError(f"verified a made-up token: {token!r}")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(), st.sampled_from([ACCESS, TICKET]))
def test_random_text_never_verifies(token: str, kind: str) -> None:
    _verify_refuses(token, kind)


@settings(max_examples=300)
@given(
    st.lists(st.text(alphabet=BASE64URL, max_size=80), min_size=1, max_size=5),
    st.sampled_from([ACCESS, TICKET]),
)
def test_random_segments_never_verify(segments: list[str], kind: str) -> None:
    _verify_refuses(".".join(segments), kind)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=300)
@given(
    header=st.fixed_dictionaries(
        {
            "alg": st.sampled_from(
                ["HS256", "HS512", "RS256", "EdDSA", "ES256", "none", "", None, 1]
            )
        },
        optional={
            "typ": json_values,
            "kid": json_values,
            "crit": json_values,
            "b64": json_values,
        },
    ),
    payload=json_values,
    signature=st.binary(max_size=64),
)
def test_random_headers_and_payloads_never_verify(
    header: dict, payload: object, signature: bytes
) -> None:
    """Any header, any payload, a signature not made with our key: refused, and only with AuthError."""
    token = f"{segment(header)}.{segment(payload)}.{b64url(signature)}"
    _verify_refuses(token, ACCESS)


@settings(max_examples=200)
@given(st.data())
def test_changing_any_character_never_yields_another_identity(
    data: st.DataObject,
) -> None:
    """Flip one character of a valid token: it is refused, or (a base64 padding bit) means the same token."""
    clock = FakeClock()
    tokens = Tokens(TokenSettings(secret=SECRET), clock=clock)
    token, issued = tokens.issue("ada")
    index = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(
        st.sampled_from(BASE64URL + ".").filter(lambda c: c != token[index])
    )
    mutated = token[:index] + replacement + token[index + 1 :]
    try:
        identity = tokens.verify(mutated)
    except AuthError:
        return
    assert identity == Identity(
        "ada", float(issued.expires_at), issued.token_id, issued_at=issued.issued_at
    )


@pytest.mark.parametrize(
    "token", ["\ud800", "a.\udfff.b", "é.é.é", "\x00", "ey" + "\u2028" * 10]
)
def test_unusual_characters_are_refused_with_auth_error(token: str) -> None:
    _verify_refuses(token, ACCESS)


# -- the ticket ledger ---------------------------------------------------------


def test_ledger_spends_each_ticket_once_and_keeps_live_ones_through_cleanup() -> None:
    clock = FakeClock()
    ledger = TicketLedger(clock=clock)
    first = Identity("ada", NOW + 30, "first")
    ledger.spend(first)
    ledger.spend(Identity("ada", NOW + 30, "second"))
    # Enough other tickets to trigger the ledger's cleanup of expired entries.
    for n in range(1100):
        ledger.spend(Identity("bob", NOW + 30, f"filler-{n}"))
    with pytest.raises(AuthError):
        ledger.spend(first)


def test_ledger_forgets_expired_tickets_only() -> None:
    clock = FakeClock()
    ledger = TicketLedger(clock=clock)
    for n in range(1100):
        ledger.spend(Identity("bob", NOW + 30, f"old-{n}"))
    clock.advance(3600)
    live = Identity("ada", clock.now + 30, "live")
    ledger.spend(live)
    ledger.spend(Identity("ada", clock.now + 30, "another"))  # triggers the cleanup
    assert len(ledger._spent) <= 3
    with pytest.raises(AuthError):
        ledger.spend(live)


# -- where the credential comes from -------------------------------------------


def upgrade(target: str = "/ws", **headers: str) -> Request:
    raw = [
        (name.replace("_", "-").lower().encode("ascii"), value.encode("latin-1"))
        for name, value in headers.items()
    ]
    return Request.from_target("GET", target, headers=raw)


def test_extract_credential_precedence() -> None:
    """Authorization (RFC 6750 §2.1), then the bearer subprotocol, then ?ticket=, then ?token=."""
    everything = {
        "authorization": "Bearer from-header",
        "sec_websocket_protocol": "rawws.v1, bearer.from-protocol",
    }
    target = "/ws?ticket=from-ticket&token=from-query"
    assert extract_credential(upgrade(target, **everything)) == Credential(
        ACCESS, "from-header"
    )
    del everything["authorization"]
    assert extract_credential(upgrade(target, **everything)) == Credential(
        ACCESS, "from-protocol"
    )
    assert extract_credential(upgrade(target)) == Credential(TICKET, "from-ticket")
    assert extract_credential(upgrade("/ws?token=from-query")) == Credential(
        ACCESS, "from-query"
    )
    assert extract_credential(upgrade("/ws")) is None


def test_extract_credential_skips_what_is_not_a_bearer_credential() -> None:
    assert extract_credential(
        upgrade("/ws?token=q", authorization="Basic dXNlcjpwYXNz")
    ) == Credential(ACCESS, "q")
    assert extract_credential(
        upgrade("/ws?token=q", authorization="Bearer   ")
    ) == Credential(ACCESS, "q")
    assert extract_credential(
        upgrade("/ws?token=q", sec_websocket_protocol="rawws.v1, bearer.")
    ) == Credential(ACCESS, "q")
    assert extract_credential(upgrade("/ws?token=&ticket=")) is None
    # The auth scheme is case-insensitive (RFC 7235 §2.1).
    assert extract_credential(upgrade("/ws", authorization="bEaReR abc")) == Credential(
        ACCESS, "abc"
    )
    # Subprotocols may come in several header lines (RFC 6455 §11.3.4).
    request = Request.from_target(
        "GET",
        "/ws",
        headers=[
            (b"sec-websocket-protocol", b"rawws.v1"),
            (b"sec-websocket-protocol", b"bearer.second-line"),
        ],
    )
    assert extract_credential(request) == Credential(ACCESS, "second-line")


def test_bearer_token_of_plain_requests() -> None:
    assert bearer_token(upgrade("/auth/ticket", authorization="Bearer abc")) == "abc"
    for value in (None, "", "Bearer", "Bearer  ", "Basic abc", "abc"):
        request = (
            upgrade("/auth/ticket")
            if value is None
            else upgrade("/auth/ticket", authorization=value)
        )
        with pytest.raises(AuthError):
            bearer_token(request)


# -- Origin (RFC 6455 §10.2) ---------------------------------------------------

ALLOWED = frozenset({"https://chat.example"})


@pytest.mark.parametrize(
    ("origin", "host", "tls"),
    [
        (None, "chat.local:8765", False),  # non-browser clients send no Origin
        ("http://chat.local:8765", "chat.local:8765", False),
        ("HTTP://Chat.Local:8765/", "chat.local:8765", False),
        ("https://chat.local", "chat.local", True),
        ("https://chat.example", "chat.local:8765", False),
    ],
)
def test_origin_allowed(origin: str | None, host: str, tls: bool) -> None:
    headers = {"host": host} if origin is None else {"host": host, "origin": origin}
    check_origin(upgrade("/ws", **headers), ALLOWED, tls=tls)


@pytest.mark.parametrize(
    ("origin", "host", "tls"),
    [
        (
            "null",
            "chat.local:8765",
            False,
        ),  # sandboxed frames, file: pages (RFC 6454 §7.3)
        ("http://evil.example", "chat.local:8765", False),
        ("http://chat.local:8765.evil.example", "chat.local:8765", False),
        (
            "http://chat.local",
            "chat.local:8765",
            False,
        ),  # another port is another origin (RFC 6454 §4)
        ("https://chat.local:8765", "chat.local:8765", False),  # and another scheme too
        ("http://chat.local", "chat.local", True),
        ("http://chat.example", "chat.local:8765", False),
    ],
)
def test_origin_refused_with_403(origin: str, host: str, tls: bool) -> None:
    with pytest.raises(HttpError) as refused:
        check_origin(upgrade("/ws", host=host, origin=origin), ALLOWED, tls=tls)
    assert refused.value.status == 403


def test_authenticator_checks_origin_then_credential_then_spends_tickets() -> None:
    clock = FakeClock()
    tokens = Tokens(TokenSettings(secret=SECRET), clock=clock)
    allowed = frozenset({"https://Chat.Example/"})  # normalised by the authenticator
    authenticate = WebSocketAuthenticator(
        tokens, TicketLedger(clock=clock), allowed, tls=True
    )
    access, _ = tokens.issue("ada")
    ticket, _ = tokens.issue("ada", TICKET)

    with pytest.raises(HttpError) as refused:
        authenticate(
            upgrade(
                f"/ws?token={access}", host="chat.local", origin="https://evil.example"
            )
        )
    assert refused.value.status == 403
    with pytest.raises(AuthError):
        authenticate(upgrade("/ws", host="chat.local"))
    assert (
        authenticate(
            upgrade(
                f"/ws?token={access}", host="chat.local", origin="https://chat.example"
            )
        ).user
        == "ada"
    )
    assert (
        authenticate(upgrade(f"/ws?ticket={ticket}", host="chat.local")).user == "ada"
    )
    with pytest.raises(AuthError, match="already used"):
        authenticate(upgrade(f"/ws?ticket={ticket}", host="chat.local"))


def test_an_upgrade_keeps_only_what_its_connection_needs_of_the_identity() -> None:
    """The token's and the login's ids serve the checks before the 101; what the connection keeps for
    its life is who, until when, when issued (``accounts.stops``) and the rights, the user's one string."""
    clock = FakeClock()
    tokens = Tokens(TokenSettings(secret=SECRET), clock=clock)
    authenticate = WebSocketAuthenticator(
        tokens, TicketLedger(clock=clock), frozenset(), tls=False
    )
    access, issued = tokens.issue("ada", session="login-1")
    assert tokens.verify(access).session == "login-1"  # the routes still read it
    first = authenticate(upgrade(f"/ws?token={access}", host="chat.local"))
    second = authenticate(upgrade(f"/ws?token={access}", host="chat.local"))
    assert isinstance(first, Identity) and isinstance(second, Identity)
    assert (first.token_id, first.session) == ("", "")
    assert (first.user, first.expires_at, first.issued_at, first.rooms) == (
        "ada",
        issued.expires_at,
        issued.issued_at,
        None,
    )
    assert first.user is second.user  # decoded apart, kept as one string


# -- RateLimiter ---------------------------------------------------------------


def test_rate_limiter_allows_a_burst_then_says_how_long_to_wait() -> None:
    limiter = RateLimiter(3, 60.0)  # 3 at once, one more every 20 s
    assert [limiter.acquire("ada", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("ada", 0.0) == pytest.approx(20.0)
    assert limiter.acquire("ada", 10.0) == pytest.approx(10.0)
    assert limiter.acquire("ada", 20.0) == 0.0
    assert limiter.acquire("ada", 20.0) > 0
    assert limiter.acquire("bob", 20.0) == 0.0  # keys are independent


def test_rate_limiter_refills_no_higher_than_its_capacity() -> None:
    limiter = RateLimiter(2, 10.0)
    assert limiter.acquire("k", 0.0) == 0.0
    assert [limiter.acquire("k", 1_000_000.0) for _ in range(3)][
        -1
    ] > 0  # a long idle still gives only 2


def test_rate_limiter_refusals_do_not_spend_tokens() -> None:
    limiter = RateLimiter(1, 10.0)
    assert limiter.acquire("k", 0.0) == 0.0
    for t in (1.0, 2.0, 3.0):
        assert limiter.acquire("k", t) > 0
    assert limiter.acquire("k", 10.0) == 0.0


def test_rate_limiter_forgets_only_idle_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_TRACKED_KEYS", 4)
    limiter = RateLimiter(1, 60.0)
    assert limiter.acquire("limited", 0.0) == 0.0
    for n in range(10):
        limiter.acquire(f"idle-{n}", float(n))
    # Cleaning up the table must not hand a limited key a fresh bucket.
    assert limiter.acquire("limited", 10.0) > 0


@pytest.mark.parametrize(
    ("capacity", "period"), [(0, 60.0), (-1, 60.0), (5, 0.0), (5, -1.0)]
)
def test_rate_limiter_rejects_nonsense_settings(capacity: int, period: float) -> None:
    with pytest.raises(ValueError):
        RateLimiter(capacity, period)


# -- a ticket's lifetime and the outside namespace -------------------------------------


@pytest.mark.parametrize("started", [NOW, NOW + 0.25, NOW + 0.999])
def test_a_ticket_lives_exactly_its_ttl_with_no_leeway_added(started: float) -> None:
    """Documented 30 s means 30 s: the 5 s clock leeway is for outside clocks, not for our own tickets."""
    clock = FakeClock(started)
    tokens = Tokens(
        TokenSettings(secret=SECRET, ticket_ttl_s=30, leeway_s=5), clock=clock
    )
    ticket, _ = tokens.issue("ada", TICKET)
    clock.advance(29.99)
    assert tokens.verify(ticket, TICKET).user == "ada"
    clock.advance(0.01)
    with pytest.raises(AuthError, match="expired"):
        tokens.verify(ticket, TICKET)
    access, _ = tokens.issue(
        "ada"
    )  # access tokens keep the leeway (outside providers' clocks drift)
    clock.advance(900 + 4)
    assert tokens.verify(access).user == "ada"


def test_outside_subjects_get_the_configured_namespace_and_bounded_length() -> None:
    settings = TokenSettings(
        secret=SECRET,
        public_key=PublicKey("RS256", rsa_public_pem()),
        public_namespace="corp",
    )
    tokens = Tokens(settings, clock=FakeClock())
    assert tokens.verify(idp_token(rsa_private_pem(), "RS256")).user == "corp:grace"
    with pytest.raises(AuthError, match="subject"):
        tokens.verify(
            jwt.encode(
                claims(NOW, typ=None, sub="g" * 80),
                rsa_private_pem(),
                algorithm="RS256",
            )
        )
    # A provider cannot issue tickets: only we do, and they carry the namespaced name.
    with pytest.raises(AuthError):
        tokens.verify(
            jwt.encode(claims(NOW, typ=TICKET), rsa_private_pem(), algorithm="RS256"),
            TICKET,
        )
    # Our own HS256 tokens are local names, never namespaced.
    local, _ = tokens.issue("grace")
    assert tokens.verify(local).user == "grace"
    with pytest.raises(ValueError):
        TokenSettings(secret=SECRET, public_namespace="a:b")
