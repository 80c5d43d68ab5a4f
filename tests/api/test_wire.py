"""The client's HTTP without I/O: URLs, a call's bytes, answers fed back as bytes (split anywhere)."""

from __future__ import annotations

import json

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawws.api import ApiError, ApiUnreachable, Published
from rawws.api.answers import published, published_or_error, room_info
from rawws.api.client import retry_pause, worth_retrying
from rawws.api.wire import (
    Answer,
    Endpoint,
    Exchange,
    encode_body,
    parse_answer,
    parse_url,
)

KEY = "rwk_0123456789ab_" + "s" * 43
LOCAL = Endpoint(False, "127.0.0.1", 8765, "")


def server_reads(data: bytes) -> tuple[h11.Request, bytes]:
    """What a real HTTP server (h11's) makes of the bytes the client wrote."""
    server = h11.Connection(h11.SERVER)
    server.receive_data(data)
    head = server.next_event()
    assert isinstance(head, h11.Request)
    body = b""
    while not isinstance(event := server.next_event(), h11.EndOfMessage):
        assert isinstance(event, h11.Data)
        body += event.data
    return head, body


def http_answer(
    status: int, body: bytes, *, headers: tuple[tuple[str, str], ...] = ()
) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("http://127.0.0.1:8765", LOCAL),
        ("http://127.0.0.1:8765/", LOCAL),
        ("http://127.0.0.1:8765/api/v1", LOCAL),
        ("https://chat.example.com", Endpoint(True, "chat.example.com", 443, "")),
        ("http://example.com/chat/", Endpoint(False, "example.com", 80, "/chat")),
        ("https://[::1]:9000/x/api/v1/", Endpoint(True, "::1", 9000, "/x")),
    ],
)
def test_a_server_url_names_its_endpoint(url: str, endpoint: Endpoint) -> None:
    assert parse_url(url) == endpoint


@pytest.mark.parametrize(
    "url", ["ws://h", "ftp://h", "http://", "http://h/?q=1", "http://u:p@h", "h:80"]
)
def test_what_is_not_an_http_server_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_url(url)


def test_the_host_header_names_a_port_only_when_it_is_not_the_default() -> None:
    assert Endpoint(True, "a.example", 443, "").host_header == "a.example"
    assert Endpoint(False, "a.example", 443, "").host_header == "a.example:443"
    assert Endpoint(False, "::1", 80, "").host_header == "[::1]"


def test_a_call_is_a_post_of_json_with_the_key_as_a_bearer_token() -> None:
    exchange = Exchange(Endpoint(False, "h", 8080, "/chat"), KEY)
    body = encode_body({"room": "stocks", "text": "ACME ↑", "idempotency_key": None})
    head, sent = server_reads(exchange.request("publish", body))
    assert (head.method, head.target) == (b"POST", b"/chat/api/v1/publish")
    headers = dict(head.headers)
    assert headers[b"host"] == b"h:8080"
    assert headers[b"authorization"] == f"Bearer {KEY}".encode()
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(sent) == {"room": "stocks", "text": "ACME ↑"}  # None left out


@settings(max_examples=100, deadline=None)
@given(
    body=st.binary(max_size=300),
    status=st.sampled_from([200, 400, 404, 409, 503]),
    cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=6),
)
def test_an_answer_split_anywhere_is_read_whole_and_the_connection_is_kept(
    body: bytes, status: int, cuts: list[int]
) -> None:
    exchange = Exchange(LOCAL, KEY)
    for _ in range(2):  # the second call runs on the same kept-alive connection
        exchange.request("presence", b"{}")
        data = http_answer(status, body)
        points = sorted({min(cut, len(data)) for cut in cuts} | {len(data)})
        answers, start = [], 0
        for point in points:  # b"" would be the end of the stream: cuts are 1 or more
            answers.append(exchange.receive(data[start:point]))
            start = point
        assert [a for a in answers[:-1] if a is not None] == []
        assert answers[-1] == Answer(
            status, (("content-length", str(len(body))),), body
        )
        assert exchange.idle


def test_an_answer_asking_to_close_leaves_the_connection_unusable() -> None:
    exchange = Exchange(LOCAL, KEY)
    exchange.request("presence", b"{}")
    answer = exchange.receive(
        http_answer(200, b"{}", headers=(("Connection", "close"),))
    )
    assert answer is not None and answer.status == 200
    assert not exchange.idle
    with pytest.raises(ApiUnreachable):
        exchange.request("presence", b"{}")


@pytest.mark.parametrize(
    "data",
    [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", b"HTTP/1.1 200 OK\r\n"],
)
def test_the_end_of_the_stream_before_the_whole_answer_is_unreachable(
    data: bytes,
) -> None:
    exchange = Exchange(LOCAL, KEY)
    exchange.request("publish", b"{}")
    if data:
        assert exchange.receive(data) is None
    with pytest.raises(ApiUnreachable):
        exchange.receive(b"")


def test_bytes_that_are_not_http_are_unreachable_not_a_crash() -> None:
    exchange = Exchange(LOCAL, KEY)
    exchange.request("publish", b"{}")
    with pytest.raises(ApiUnreachable):
        exchange.receive(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")


def test_a_json_error_answer_is_an_api_error_with_its_retry_after() -> None:
    error = {"error": {"status": 503, "code": "unavailable", "message": "retry"}}
    answer = Answer(503, (("retry-after", "1"),), json.dumps(error).encode())
    with pytest.raises(ApiError) as raised:
        parse_answer(answer)
    assert (raised.value.status, raised.value.code, raised.value.message) == (
        503,
        "unavailable",
        "retry",
    )
    assert raised.value.retry_after == 1.0
    assert worth_retrying(raised.value)
    assert retry_pause(0, raised.value) == 1.0


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (404, b"Not Found", "http_404"),
        (502, b"", "http_502"),
        (200, b"[1]", "bad_answer"),
        (200, b"not json", "bad_answer"),
        (409, b'{"error": "x"}', "http_409"),
    ],
)
def test_answers_that_are_not_the_apis_are_errors_named_by_status(
    status: int, body: bytes, code: str
) -> None:
    with pytest.raises(ApiError) as raised:
        parse_answer(Answer(status, (), body))
    assert (raised.value.status, raised.value.code) == (status, code)
    assert not worth_retrying(raised.value) or status == 503


@settings(max_examples=200)
@given(status=st.integers(min_value=400, max_value=599))
def test_only_no_answer_and_503_are_retried(status: int) -> None:
    assert worth_retrying(ApiError(status, "x", "")) is (status == 503)
    assert worth_retrying(ApiUnreachable("reset"))


@settings(max_examples=50)
@given(attempt=st.integers(min_value=0, max_value=60))
def test_the_pause_between_attempts_grows_and_is_capped(attempt: int) -> None:
    lost = ApiUnreachable("reset")
    assert retry_pause(attempt, lost) <= retry_pause(attempt + 1, lost) <= 2.0


def test_a_publish_answer_is_read_strictly() -> None:
    assert published({"room": "r", "id": 7, "duplicate": True}) == Published(
        "r", 7, True
    )
    for wrong in (
        {"room": "r", "id": "7", "duplicate": False},
        {"room": "r", "id": True, "duplicate": False},
        {"room": "r", "id": 7, "duplicate": 0},
        {"id": 7, "duplicate": False},
    ):
        with pytest.raises(ApiError) as raised:
            published(wrong)
        assert raised.value.code == "bad_answer"


def test_a_batch_result_is_a_published_or_the_error_it_answered() -> None:
    error = published_or_error(
        {"error": {"status": 404, "code": "no_such_room", "message": "no"}}
    )
    assert isinstance(error, ApiError) and (error.status, error.code) == (
        404,
        "no_such_room",
    )
    assert published_or_error({"room": "r", "id": 1, "duplicate": False}) == Published(
        "r", 1, False
    )
    assert room_info({"room": "r", "kind": "feed", "owner": None}).owner is None


@settings(max_examples=150)
@given(
    tls=st.booleans(),
    host=st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z]{2,6}){0,2}", fullmatch=True),
    port=st.integers(min_value=1, max_value=65535),
    prefix=st.from_regex(r"(/[a-z0-9_-]{1,8}){0,3}", fullmatch=True),
    slash=st.booleans(),
)
def test_an_endpoint_written_as_a_url_reads_back_as_itself(
    tls: bool, host: str, port: int, prefix: str, slash: bool
) -> None:
    scheme = "https" if tls else "http"
    url = f"{scheme}://{host}:{port}{prefix}{'/' if slash else ''}"
    assert parse_url(url) == Endpoint(tls, host, port, prefix)
    assert Endpoint(tls, host, port, prefix).target("publish") == (
        f"{prefix}/api/v1/publish"
    )


@settings(max_examples=150)
@given(
    room=st.text(max_size=40),
    text=st.text(max_size=200),
    idempotency_key=st.none() | st.text(min_size=1, max_size=128),
)
def test_every_body_the_client_writes_is_read_by_an_http_server_as_sent(
    room: str, text: str, idempotency_key: str | None
) -> None:
    exchange = Exchange(LOCAL, KEY)
    fields = {"room": room, "text": text, "idempotency_key": idempotency_key}
    head, sent = server_reads(exchange.request("publish", encode_body(fields)))
    expected = {k: v for k, v in fields.items() if v is not None}
    assert json.loads(sent) == expected
    assert dict(head.headers)[b"content-length"] == str(len(sent)).encode()
