"""What the tests share: raw bytes for a server, one small HTTP client, the account flow, built JWTs.

Every test module takes these from here; no test module imports another. What
bench, soak and conformance need too (a free port, waiting for one, masked
client frames, child processes) is in ``testkit`` at the repository's root.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import hmac
import json
import os
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from rawws.accounts.tokens import ACCESS, MAX_TOKEN_BYTES, TICKET
from testkit import masked_frame

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's sample key
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # and its accept value


def upgrade_request(
    path: str = "/echo", *, key: str = KEY, extra: str = "", host: str = "localhost"
) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        f"{extra}"
        "\r\n"
    ).encode("latin-1")


def random_key() -> str:
    return base64.b64encode(os.urandom(16)).decode("ascii")


async def open_raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def read_http_head(
    reader: asyncio.StreamReader, timeout: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names, last one wins) and the body (by Content-Length)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = b""
    length = int(headers.get("content-length", "0"))
    if length:
        body = await asyncio.wait_for(reader.readexactly(length), timeout)
    return status, headers, body


async def read_frame(
    reader: asyncio.StreamReader, timeout: float = 5.0
) -> tuple[int, bytes, bool]:
    """One unmasked server frame: (opcode, payload, fin)."""
    first, second = await asyncio.wait_for(reader.readexactly(2), timeout)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    payload = await asyncio.wait_for(reader.readexactly(length), timeout)
    return first & 0x0F, payload, bool(first & 0x80)


def close_code(payload: bytes) -> int:
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


# -- compressed messages, whole responses --------------------------------------

DEFLATE_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 §7.2.1: stripped by the sender, added back to inflate


def deflate_message(data: bytes) -> bytes:
    """One message compressed as permessage-deflate sends it (RFC 7692 §7.2.1), tail removed."""
    compressor = zlib.compressobj(wbits=-15)
    compressed = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert compressed.endswith(DEFLATE_TAIL)
    return compressed[: -len(DEFLATE_TAIL)]


def inflate_message(payload: bytes) -> bytes:
    """The data of one compressed message from a server (RFC 7692 §7.2.2)."""
    return zlib.decompressobj(wbits=-15).decompress(payload + DEFLATE_TAIL)


async def read_frame_full(
    reader: asyncio.StreamReader, timeout: float = 5.0
) -> tuple[int, bytes, bool, bool]:
    """One unmasked server frame: (opcode, payload, fin, rsv1)."""
    first, second = await asyncio.wait_for(reader.readexactly(2), timeout)
    assert not second & 0x80, "a server must not mask its frames (RFC 6455 §5.1)"
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack(
            "!H", await asyncio.wait_for(reader.readexactly(2), timeout)
        )
    elif length == 127:
        (length,) = struct.unpack(
            "!Q", await asyncio.wait_for(reader.readexactly(8), timeout)
        )
    payload = await asyncio.wait_for(reader.readexactly(length), timeout)
    return first & 0x0F, payload, bool(first & 0x80), bool(first & 0x40)


async def read_until_eof(
    reader: asyncio.StreamReader, timeout: float = 5.0
) -> tuple[bytes, bool]:
    """Everything the server sends until it closes: (data, closed). ``closed`` is False on timeout.

    A reset counts as closed: the bytes received before it are kept.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    chunks: list[bytes] = []
    try:
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return b"".join(chunks), False
            chunk = await asyncio.wait_for(reader.read(65536), remaining)
            if not chunk:
                return b"".join(chunks), True
            chunks.append(chunk)
    except TimeoutError:
        return b"".join(chunks), False
    except (ConnectionResetError, BrokenPipeError):
        return b"".join(chunks), True


def parse_http_response(data: bytes) -> tuple[int, dict[str, str], bytes, bytes]:
    """Status, headers (lower-case names), body (by Content-Length) and whatever follows them."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no complete HTTP response head in {data[:200]!r}"
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), (
        f"not an HTTP/1.1 status line: {lines[0]!r}"
    )
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    return status, headers, rest[:length], rest[length:]


# -- one small HTTP client --------------------------------------------------------

TIMEOUT_S = 10.0  # the longest any single exchange may take before the test fails instead of hanging


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def error(self) -> str:
        """The message of rawws's error body ``{"error": {"status", "message"}}``."""
        payload = self.json
        assert payload["error"]["status"] == self.status
        return payload["error"]["message"]


async def http(
    port: int,
    method: str,
    path: str,
    payload: object = None,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = TIMEOUT_S,
) -> Reply:
    """One request on its own connection (``Connection: close``), read until the server closes it.

    JSON ``payload`` unless raw ``body`` is given; ``headers`` are added last
    and may replace the defaults. ``Content-Length`` goes with every body
    unless a ``Transfer-Encoding`` header is given.
    """
    all_headers = {"Host": f"127.0.0.1:{port}", "Connection": "close"}
    if body is None and payload is not None:
        body = json.dumps(payload).encode("utf-8")
        all_headers["Content-Type"] = "application/json"
    all_headers.update(headers or {})
    if body is not None and "Transfer-Encoding" not in all_headers:
        all_headers["Content-Length"] = str(len(body))
    head = (
        f"{method} {path} HTTP/1.1\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in all_headers.items())
        + "\r\n"
    )
    reader, writer = await asyncio.wait_for(open_raw(port), timeout)
    try:
        writer.write(head.encode("latin-1") + (body or b""))
        data, closed = await read_until_eof(reader, timeout)
        assert closed, f"{method} {path}: no complete answer within {timeout}s"
    finally:
        await close_writer(writer, timeout)
    status, response_headers, content, _ = parse_http_response(data)
    if method != "HEAD":
        expected = int(response_headers.get("content-length", "0"))
        assert len(content) == expected, (
            f"{method} {path}: {len(content)} of {expected} body bytes"
        )
    return Reply(status, response_headers, content)


async def close_writer(
    writer: asyncio.StreamWriter, timeout: float = TIMEOUT_S
) -> None:
    """Close our side and wait, bounded, until the connection is gone (a peer that already left is fine)."""
    writer.close()
    with contextlib.suppress(ConnectionError, OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), timeout)


async def wait_for_condition(
    predicate: Callable[[], Any], *, timeout: float = TIMEOUT_S, what: str = ""
) -> Any:
    """Poll ``predicate`` (a server-side condition) until it is truthy, bounded by ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while not (result := predicate()):
                await asyncio.sleep(0.01)
            return result
    except TimeoutError:
        raise AssertionError(
            f"{what or predicate} not reached within {timeout}s"
        ) from None


# -- the rawws command, as a user runs it ------------------------------------------------

CLI_WAIT_S = 20.0  # the bound on one `python -m rawws …` run, its start included; nothing should come near it


def client_env(password: str | None = None) -> dict[str, str]:
    """This environment with ``RAWWS_PASSWORD`` set to ``password`` (or unset), for a client process."""
    env = {key: value for key, value in os.environ.items() if key != "RAWWS_PASSWORD"}
    env.update(TERM="xterm", PYTHONUNBUFFERED="1")
    if password is not None:
        env["RAWWS_PASSWORD"] = password
    return env


async def rawws(
    *args: str,
    stdin: bytes | None = None,
    password: str | None = None,
    wait: float = CLI_WAIT_S,
) -> tuple[int, str, str]:
    """Run ``python -m rawws ARGS`` without a terminal, within ``wait`` seconds; exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rawws", *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=client_env(password),
        start_new_session=True,  # no controlling terminal: a password prompt cannot hang the test
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), wait)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


# -- the account flow over that client ---------------------------------------------

PASSWORD = "Tr0ub4dor&3-horse"


async def register(port: int, username: str, password: str = PASSWORD) -> Reply:
    return await http(
        port, "POST", "/auth/register", {"username": username, "password": password}
    )


async def login(port: int, username: str, password: str = PASSWORD) -> Reply:
    return await http(
        port, "POST", "/auth/login", {"username": username, "password": password}
    )


async def ticket(port: int, access_token: str) -> Reply:
    return await http(
        port,
        "POST",
        "/auth/ticket",
        headers={"Authorization": f"Bearer {access_token}"},
    )


async def access_token(port: int, username: str, password: str = PASSWORD) -> str:
    """Log in: the access token (the login must succeed)."""
    reply = await login(port, username, password)
    assert reply.status == 200, f"login {username}: {reply.status} {reply.body!r}"
    return reply.json["access_token"]


async def registered_token(
    port: int, username: str = "Ada", password: str = PASSWORD
) -> str:
    """Register ``username`` and log in: the access token."""
    reply = await register(port, username, password)
    assert reply.status == 201, f"register {username}: {reply.status} {reply.body!r}"
    return await access_token(port, username, password)


async def raw_upgrade_status(
    port: int, target: str, extra: str = ""
) -> tuple[int, dict[str, str]]:
    """Try an upgrade; on a 101 read the welcome and close politely. The status and headers."""
    reader, writer = await open_raw(port)
    try:
        writer.write(upgrade_request(target, host=f"127.0.0.1:{port}", extra=extra))
        status, headers, _ = await read_http_head(reader, TIMEOUT_S)
        if status == 101:
            opcode, _, _ = await read_frame(reader, TIMEOUT_S)
            assert opcode == 0x1  # the welcome, a text frame
            writer.write(masked_frame(0x8, b"\x03\xe8"))  # close, 1000
            opcode, _, _ = await read_frame(reader, TIMEOUT_S)
            assert opcode == 0x8
        return status, headers
    finally:
        writer.close()


# -- JWTs built by hand, and the attack corpus every verifier must refuse -----------

SECRET_TEXT = (
    "rawws-test-secret-0123456789abcdef"  # >= 32 bytes, as TokenSettings insists
)
SECRET = SECRET_TEXT.encode("utf-8")
OTHER_SECRET = b"an-entirely-different-secret-0123456789"
ISSUER = "rawws"
AUDIENCE = "rawws"
NOW = 1_700_000_000.0  # the fake clock's start: far from the real time on purpose


def b64url(data: bytes) -> str:
    """RFC 7515 §2: base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def sign_hmac(header: dict, payload: dict, key: bytes, digest=hashlib.sha256) -> str:
    """A JWS in compact form (RFC 7515 §7.1) signed with HMAC by hand, whatever the key looks like.

    PyJWT would refuse a PEM as an HMAC key; an attacker's tooling would not.
    """
    signing_input = f"{segment(header)}.{segment(payload)}"
    signature = hmac.new(key, signing_input.encode("ascii"), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def unsigned(payload: dict, alg: str = "none") -> str:
    """RFC 7519 §6.1's unsecured JWT: empty signature."""
    return f"{segment({'alg': alg, 'typ': 'JWT'})}.{segment(payload)}."


def claims(now: float = NOW, **overrides: object) -> dict:
    """The claims rawws issues; an override of ``None`` removes that claim."""
    base: dict[str, object] = {
        "sub": "ada",
        "iat": int(now),
        "exp": int(now) + 600,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "jti": "jti-0123456789",
        "typ": ACCESS,
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def hs256(payload: dict, key: bytes = SECRET) -> str:
    return sign_hmac({"alg": "HS256", "typ": "JWT"}, payload, key)


@functools.cache
def rsa_private_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@functools.cache
def rsa_public_pem() -> bytes:
    key = serialization.load_pem_private_key(rsa_private_pem(), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class Attack:
    name: str
    token: str
    kind: str = ACCESS  # what it is presented as: an access token (``?token=``) or a ticket (``?ticket=``)


def attack_corpus(secret: bytes, public_pem: bytes, now: float) -> list[Attack]:
    """Tokens a server with HS256 ``secret`` and RS256 ``public_pem`` configured must refuse at time ``now``.

    Each would be accepted if one check were missing (or names a parser-level
    failure that must still end as a 401, never a 500).
    """
    valid = hs256(claims(now), secret)
    header, payload, signature = valid.split(".")
    tampered_payload = segment(claims(now, sub="admin"))
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    attacks = [
        # RFC 8725 §2.1 / §3.1: the algorithm comes from us, never from the token.
        Attack("alg-none", unsigned(claims(now))),
        Attack("alg-None-mixed-case", unsigned(claims(now), alg="None")),
        Attack("alg-none-with-signature", unsigned(claims(now)) + signature),
        Attack(
            "alg-confusion-hs256-with-rs-public-key",
            sign_hmac({"alg": "HS256", "typ": "JWT"}, claims(now), public_pem),
        ),
        Attack(
            "alg-confusion-hs256-with-rs-public-key-claiming-rs256",
            sign_hmac({"alg": "RS256", "typ": "JWT"}, claims(now), public_pem),
        ),
        Attack(
            "alg-hs512",
            sign_hmac(
                {"alg": "HS512", "typ": "JWT"}, claims(now), secret, hashlib.sha512
            ),
        ),
        Attack(
            "alg-hs384",
            sign_hmac(
                {"alg": "HS384", "typ": "JWT"}, claims(now), secret, hashlib.sha384
            ),
        ),
        Attack("alg-missing", sign_hmac({"typ": "JWT"}, claims(now), secret)),
        # RFC 7519 §4.1: time claims, with only a small leeway.
        Attack(
            "expired",
            hs256(claims(now, iat=int(now) - 3600, exp=int(now) - 60), secret),
        ),
        Attack("nbf-in-future", hs256(claims(now, nbf=int(now) + 600), secret)),
        Attack(
            "iat-in-future",
            hs256(claims(now, iat=int(now) + 600, exp=int(now) + 1200), secret),
        ),
        # RFC 8725 §3.9 / §3.10: audience and issuer are checked.
        Attack("wrong-aud", hs256(claims(now, aud="someone-else"), secret)),
        Attack(
            "wrong-aud-list",
            hs256(claims(now, aud=["someone-else", "another"]), secret),
        ),
        Attack("wrong-iss", hs256(claims(now, iss="https://evil.example"), secret)),
        # Signatures.
        Attack("bad-signature", f"{header}.{payload}.{flipped}"),
        Attack("tampered-payload", f"{header}.{tampered_payload}.{signature}"),
        Attack("empty-signature", f"{header}.{payload}."),
        Attack("signed-with-another-secret", hs256(claims(now), OTHER_SECRET)),
        Attack("truncated", valid[:-12]),
        Attack("two-segments", f"{header}.{payload}"),
        # RFC 8725 §3.11 would have us bound what we parse: 8 KiB at most.
        Attack("over-8-KiB", hs256(claims(now, pad="x" * MAX_TOKEN_BYTES), secret)),
        # Required claims.
        Attack("missing-sub", hs256(claims(now, sub=None), secret)),
        Attack("missing-exp", hs256(claims(now, exp=None), secret)),
        Attack("missing-iat", hs256(claims(now, iat=None), secret)),
        Attack("missing-iss", hs256(claims(now, iss=None), secret)),
        Attack("missing-aud", hs256(claims(now, aud=None), secret)),
        Attack("empty-sub", hs256(claims(now, sub=""), secret)),
        Attack("non-string-sub", hs256(claims(now, sub=42), secret)),
        # RFC 7519 §2: a NumericDate is a finite JSON number (Python's json reads NaN and Infinity too).
        Attack("exp-string", hs256(claims(now, exp="never"), secret)),
        Attack("exp-true", hs256(claims(now, exp=True), secret)),
        Attack("exp-nan", hs256(claims(now, exp=float("nan")), secret)),
        Attack("exp-infinity", hs256(claims(now, exp=float("inf")), secret)),
        Attack("exp-huge-integer", hs256(claims(now, exp=10**400), secret)),
        Attack("iat-nan", hs256(claims(now, iat=float("nan")), secret)),
        Attack("nbf-nan", hs256(claims(now, nbf=float("nan")), secret)),
        Attack("nbf-null", hs256(claims(now, nbf=[]), secret)),
        # RFC 8725 §3.11 / §2.8: one kind of token must not stand in for another.
        Attack("access-token-as-ticket", hs256(claims(now), secret), kind=TICKET),
        Attack(
            "ticket-as-access-token",
            hs256(claims(now, typ=TICKET, exp=int(now) + 30), secret),
        ),
        Attack(
            "ticket-without-jti",
            hs256(claims(now, typ=TICKET, jti=None, exp=int(now) + 30), secret),
            kind=TICKET,
        ),
        # Garbage.
        Attack("empty-string", ""),
        Attack("garbage-word", "garbage"),
        Attack("garbage-dots", "...."),
        Attack("garbage-abc", "a.b.c"),
        Attack(
            "garbage-header-not-json", f"{b64url(b'not json')}.{payload}.{signature}"
        ),
        Attack(
            "garbage-header-json-list", f"{segment(['HS256'])}.{payload}.{signature}"
        ),
        Attack(
            "garbage-payload-not-json", f"{header}.{b64url(b'not json')}.{signature}"
        ),
        Attack("garbage-payload-json-list", hs256([1, 2, 3], secret)),  # type: ignore[arg-type]
        Attack("garbage-non-base64", "!!!!.????.****"),
        Attack("garbage-bearer-prefix", "Bearer " + valid),
    ]
    names = [attack.name for attack in attacks]
    assert len(names) == len(set(names))
    return attacks
