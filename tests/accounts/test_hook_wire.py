"""The hooks without I/O (signing, the answer's meaning, retries, room patterns) and the HTTP client
against a real little app on loopback: what it sends verifies, a slow or absent app is a failure."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawws.accounts.hook_wire import (
    MAX_REASON_CHARS,
    RETRY_MAX_S,
    BadAnswer,
    Verdict,
    encode_body,
    parse_answer,
    retry_delay,
    room_matches,
    sign,
    verify,
)
from rawws.accounts.hooks import HookClient, HookFailed, peer_address
from rawws.core.counters import Counters
from tests.client.test_connect import (
    self_signed as self_signed,
)  # the openssl certificate
from tests.support.hook_app import SECRET, Call, HookApp, nothing_listening, verdict

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=8,
)


def test_the_signature_is_the_hmac_of_the_exact_bytes() -> None:
    body = encode_body({"user": "ada", "room": "den"})
    assert body == b'{"room":"den","user":"ada"}'
    signature = sign(SECRET, body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify(SECRET, body, signature)
    assert not verify(SECRET, body + b" ", signature)
    assert not verify(b"another key entirely, 32 bytes or more", body, signature)
    assert not verify(SECRET, body, None)
    assert not verify(SECRET, body, signature.upper())


@given(st.binary(), st.binary(min_size=1))
def test_a_changed_body_never_verifies(body: bytes, extra: bytes) -> None:
    assert verify(SECRET, body, sign(SECRET, body))
    assert not verify(SECRET, body + extra, sign(SECRET, body))


@given(st.booleans(), st.one_of(st.none(), st.text(), JSON), st.integers(200, 299))
def test_a_2xx_with_a_boolean_allow_is_a_verdict(
    allow: bool, reason: object, status: int
) -> None:
    answer: dict[str, object] = {"allow": allow}
    if reason is not None:
        answer["reason"] = reason
    got = parse_answer(status, json.dumps(answer).encode())
    assert got.allow is allow and not got.failed
    expected = reason[:MAX_REASON_CHARS] if isinstance(reason, str) else ""
    assert got.reason == expected


@given(st.integers(100, 599).filter(lambda s: not 200 <= s <= 299), JSON)
def test_any_other_status_is_a_failure(status: int, answer: object) -> None:
    with pytest.raises(BadAnswer):
        parse_answer(status, json.dumps({"allow": True, "x": answer}).encode())


@given(
    JSON.filter(
        lambda v: not (isinstance(v, dict) and isinstance(v.get("allow"), bool))
    )
)
def test_json_without_a_boolean_allow_is_a_failure(answer: object) -> None:
    with pytest.raises(BadAnswer):
        parse_answer(200, json.dumps(answer).encode())


@given(st.binary())
def test_any_bytes_are_a_verdict_or_a_bad_answer(body: bytes) -> None:
    """The parser never raises anything else, whatever the app sent."""
    try:
        got = parse_answer(200, body)
    except BadAnswer:
        return
    assert isinstance(got, Verdict)
    assert json.loads(body)["allow"] is got.allow


def test_truthy_values_are_not_an_allow() -> None:
    for allow in ('"true"', "1", "null", "[]", '{"yes":1}'):
        with pytest.raises(BadAnswer):
            parse_answer(200, f'{{"allow": {allow}}}'.encode())


@given(st.integers(1, 10_000))
def test_retries_double_from_one_second_to_a_minute(attempts: int) -> None:
    delay = retry_delay(attempts)
    assert delay == min(RETRY_MAX_S, 2.0 ** min(attempts - 1, 10))
    assert retry_delay(attempts + 1) >= delay


NAMES = st.text(st.characters(blacklist_characters="*"), max_size=12)


@given(NAMES.filter(bool), NAMES)
def test_room_patterns(prefix: str, tail: str) -> None:
    """A room's name never holds ``*`` (``chat.room_names``): a pattern is a name or a prefix."""
    room = prefix + tail
    assert room_matches((prefix + "*",), room)
    assert room_matches((room,), room)
    assert room_matches((prefix,), prefix) and not room_matches((prefix,), prefix + "x")
    assert not room_matches((), room)


def test_the_client_address_is_the_peer_without_its_port() -> None:
    assert peer_address("10.0.0.1:5000") == "10.0.0.1"
    assert peer_address("[::1]:5000") == "::1"
    assert peer_address("somewhere") == "somewhere"


async def test_the_client_asks_a_real_app_and_every_request_verifies() -> None:
    def decide(call: Call) -> tuple[int, bytes]:
        if call.body["room"] == "no":
            return verdict(False, "not that one")
        return verdict(True)

    app = await HookApp(decide=decide).start()
    counters = Counters()
    client = HookClient(app.url, SECRET, 2.0, counters=counters)
    try:
        allowed = await client.ask("join", {"user": "ada", "room": "yes"})
        denied = await client.ask("join", {"user": "ada", "room": "no"})
    finally:
        await app.close()
    assert allowed == Verdict(True, "")
    assert denied == Verdict(False, "not that one")
    assert [c.kind for c in app.calls] == ["join", "join"]
    assert len({c.delivery for c in app.calls}) == 2
    assert app.bad_signatures == 0
    assert counters.hook_calls == {("join", "allow"): 1, ("join", "deny"): 1}


async def test_a_wrong_key_is_refused_by_the_app_and_fails() -> None:
    app = await HookApp().start()
    client = HookClient(app.url, b"not the app's key, but long enough 0123", 2.0)
    try:
        got = await client.ask("join", {"user": "ada", "room": "den"})
    finally:
        await app.close()
    assert got == Verdict(False, "", failed=True)
    assert app.bad_signatures == 1 and not app.calls


async def test_a_slow_app_fails_within_the_timeout_under_either_policy() -> None:
    async def slow(call: Call) -> tuple[int, bytes]:
        await asyncio.sleep(5)
        return verdict(True)

    app = await HookApp(decide=slow).start()
    deny = HookClient(app.url, SECRET, 0.2)
    allow = HookClient(app.url, SECRET, 0.2, failure_allows=True)
    try:
        assert await deny.ask("say", {"user": "a"}) == Verdict(False, failed=True)
        assert await allow.ask("say", {"user": "a"}) == Verdict(True, failed=True)
        with pytest.raises(HookFailed, match="no answer within"):
            await deny.post("say", b"{}", "d1")
    finally:
        await app.close()
    assert deny.counters.hook_calls == {("say", "failed"): 1}


async def test_no_app_listening_fails() -> None:
    client = HookClient(nothing_listening(), SECRET, 2.0)
    with pytest.raises(HookFailed):
        await client.post("connect", b"{}", "d1")
    assert await client.ask("connect", {}) == Verdict(False, failed=True)


async def test_an_answer_too_long_fails() -> None:
    app = await HookApp(decide=lambda call: (200, b" " * 100_000 + b"{}")).start()
    client = HookClient(app.url, SECRET, 2.0)
    try:
        with pytest.raises(HookFailed, match="over"):
            await client.post("say", b"{}", "d1")
    finally:
        await app.close()


def test_the_client_never_shows_its_key() -> None:
    client = HookClient("https://user:pw@app.example/h", SECRET, 2.0)
    assert SECRET.decode() not in repr(client) and "pw" not in repr(client)
    assert client.port == 443 and client.tls and client.host_header == "app.example"


async def test_https_is_verified_against_the_trusted_cas(
    self_signed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    app = await HookApp().start(tls=context)
    try:
        untrusted = HookClient(app.url, SECRET, 2.0)
        assert await untrusted.ask("connect", {}) == Verdict(False, failed=True)
        monkeypatch.setenv(
            "SSL_CERT_FILE", str(cert)
        )  # the operator's way to trust a CA
        trusted = HookClient(app.url, SECRET, 2.0)
        assert await trusted.ask("connect", {"user": "ada"}) == Verdict(True)
    finally:
        await app.close()
    assert [c.body for c in app.calls] == [{"user": "ada"}]
