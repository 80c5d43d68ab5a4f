"""A real server behind a (simulated) trusted proxy: the forwarded client is the one limited, logged and judged."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.conftest import StartServer
from tests.support.helpers import http, open_raw, read_http_head, upgrade_request

WRONG = {"username": "nobody", "password": "wrong-Passw0rd"}


async def login_from(port: int, forwarded_for: str) -> int:
    reply = await http(
        port, "POST", "/auth/login", WRONG, headers={"X-Forwarded-For": forwarded_for}
    )
    return reply.status


async def test_login_limit_is_per_forwarded_client_behind_a_trusted_proxy(
    start_server: StartServer,
) -> None:
    server = await start_server(
        logins_per_minute_per_address=2, forwarded_allow_ips=("127.0.0.1",)
    )
    assert [await login_from(server.port, "198.51.100.1") for _ in range(3)] == [
        401,
        401,
        429,
    ]
    # Another client behind the same proxy is not throttled by the first one.
    assert await login_from(server.port, "198.51.100.2") == 401
    # A client cannot buy a fresh budget by writing its own X-Forwarded-For: the proxy's entry is the rightmost.
    assert await login_from(server.port, "7.7.7.7, 198.51.100.1") == 429


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    start_server: StartServer,
) -> None:
    server = await start_server(
        logins_per_minute_per_address=2
    )  # no trusted proxies: the default
    statuses = [await login_from(server.port, f"198.51.100.{n}") for n in range(3)]
    assert statuses == [401, 401, 429]


async def upgrade_status(port: int, extra: str) -> int:
    reader, writer = await open_raw(port)
    try:
        writer.write(upgrade_request("/ws", host="chat.example", extra=extra))
        await writer.drain()
        status, _, _ = await read_http_head(reader)
        return status
    finally:
        writer.close()


@pytest.mark.parametrize(("trusted", "expected"), [(True, 401), (False, 403)])
async def test_origin_check_behind_a_tls_terminating_proxy(
    start_server: StartServer, trusted: bool, expected: int
) -> None:
    server = await start_server(forwarded_allow_ips=("127.0.0.1",) if trusted else ())
    extra = "Origin: https://chat.example\r\nX-Forwarded-Proto: https\r\nX-Forwarded-For: 198.51.100.7\r\n"
    # 401 (no credential) means the origin passed; 403 means it was refused.
    assert await upgrade_status(server.port, extra) == expected
    # Over plain http the page's origin is http://, proxy or not.
    assert await upgrade_status(server.port, "Origin: http://chat.example\r\n") == 401


async def test_websocket_log_lines_show_the_forwarded_client(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_server(forwarded_allow_ips=("127.0.0.0/8",))
    caplog.set_level(logging.INFO, logger="rawws")
    reader, writer = await open_raw(server.port)
    writer.write(
        upgrade_request(
            "/echo", extra='Forwarded: for="[2001:db8::7]:4711";proto=https\r\n'
        )
    )
    await writer.drain()
    status, _, _ = await read_http_head(reader)
    assert status == 101
    writer.close()
    for _ in range(100):
        if any("ws close" in record.getMessage() for record in caplog.records):
            break
        await asyncio.sleep(0.02)
    lines = [
        record.getMessage()
        for record in caplog.records
        if record.getMessage().startswith("ws ")
    ]
    assert any("ws open peer=[2001:db8::7] " in line for line in lines), lines
    assert any("ws close peer=[2001:db8::7] " in line for line in lines), lines


def test_forwarded_allow_ips_from_flag_and_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rawws.cli import build_parser, serve_config
    from rawws.config import ServerConfig, from_env

    assert ServerConfig().forwarded_allow_ips == ()
    assert from_env(
        {"RAWWS_FORWARDED_ALLOW_IPS": "10.0.0.1, 10.1.0.0/16"}
    ).forwarded_allow_ips == (
        "10.0.0.1",
        "10.1.0.0/16",
    )
    monkeypatch.setenv("RAWWS_FORWARDED_ALLOW_IPS", "10.0.0.1")
    args = build_parser().parse_args(
        ["serve", "--forwarded-allow-ips", "127.0.0.1,::1"]
    )
    assert serve_config(args).forwarded_allow_ips == ("127.0.0.1", "::1")
    with pytest.raises(ValueError, match="not an address or network: 'proxy.local'"):
        ServerConfig(forwarded_allow_ips=("proxy.local",))


async def test_connection_limit_counts_each_forwarded_client(
    start_server: StartServer,
) -> None:
    server = await start_server(
        websockets_per_address=1, forwarded_allow_ips=("127.0.0.1",)
    )
    held = []
    try:
        for client, expected in (
            ("198.51.100.1", 101),
            ("198.51.100.2", 101),
            ("198.51.100.1", 429),
        ):
            reader, writer = await open_raw(server.port)
            writer.write(
                upgrade_request("/echo", extra=f"X-Forwarded-For: {client}\r\n")
            )
            await writer.drain()
            status, _, _ = await read_http_head(reader)
            assert status == expected, client
            held.append(writer)
    finally:
        for writer in held:
            writer.close()
