"""Settings from defaults, RAWWS_* variables and flags: one check for a flag and its variable."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from rawws.cli import build_parser, parse_size, serve_config
from rawws.config import (
    DEFAULT_MAX_MESSAGE_BYTES,
    RULES,
    ServerConfig,
    from_env,
)
from rawws.errors import SettingError


def test_defaults_are_safe():
    config = ServerConfig()
    assert config.host == "127.0.0.1"
    assert config.max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES == 1 << 20
    assert config.compression and not config.echo and not config.tls


def test_environment_overrides_defaults():
    config = from_env(
        {
            "RAWWS_PORT": "9001",
            "RAWWS_ECHO": "yes",
            "RAWWS_PING_INTERVAL_S": "2.5",
            "OTHER": "x",
        }
    )
    assert (config.port, config.echo, config.ping_interval_s) == (9001, True, 2.5)


@pytest.mark.parametrize(
    ("name", "value"), [("RAWWS_PORT", "eighty"), ("RAWWS_ECHO", "maybe")]
)
def test_bad_environment_values_name_the_variable(name, value):
    with pytest.raises(ValueError, match=name):
        from_env({name: value})


def test_flags_override_environment(monkeypatch):
    monkeypatch.setenv("RAWWS_PORT", "9001")
    monkeypatch.setenv("RAWWS_MAX_MESSAGE_BYTES", "100")
    args = build_parser().parse_args(["serve", "--port", "9002"])
    config = serve_config(args)
    assert config.port == 9002 and config.max_message_bytes == 100


def test_tls_needs_cert_and_key():
    with pytest.raises(ValueError):
        ServerConfig(tls_cert="cert.pem")


@pytest.mark.parametrize(
    ("text", "size"),
    [("100", 100), ("64k", 65536), ("1MiB", 1 << 20), ("16MB", 16 << 20)],
)
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["-1", "lots", "1 TiB", ""])
def test_a_client_size_that_is_not_one_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="not a size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("flags", "mode"),
    [
        ([], "shared"),
        (["--compression", "dedicated"], "dedicated"),
        (["--compression", "off"], "off"),
        (["--no-compression"], "off"),
    ],
)
def test_compression_mode_flags(monkeypatch, flags, mode):
    monkeypatch.delenv("RAWWS_COMPRESSION", raising=False)
    assert (
        serve_config(build_parser().parse_args(["serve", *flags])).compression == mode
    )


@pytest.mark.parametrize(
    ("value", "mode"), [("dedicated", "dedicated"), ("0", "off"), ("true", "shared")]
)
def test_compression_from_the_environment(value, mode):
    assert from_env({"RAWWS_COMPRESSION": value}).compression == mode


def test_compression_settings_are_bounded():
    with pytest.raises(ValueError):
        ServerConfig(compression="sometimes")
    with pytest.raises(ValueError):
        ServerConfig(compression_window_bits=8)
    with pytest.raises(
        SettingError, match=r"^--compression-window-bits 16: must be 9 to 15$"
    ):
        serve_config(
            build_parser().parse_args(["serve", "--compression-window-bits", "16"]),
            environ={},
        )
    assert ServerConfig(compression=False).compression == "off"


def test_every_number_has_its_range_checked():
    numbers = {
        f.name
        for f in dataclasses.fields(ServerConfig)
        if str(f.type).startswith(("int", "float"))
    }
    assert numbers == set(RULES), (
        "a setting without a rule, or a rule without a setting"
    )


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("ping_interval_s", -5.0, "must be 0 (no pings) or more seconds"),
        ("ping_timeout_s", 0.0, "must be more than 0 seconds"),
        ("handshake_timeout_s", float("inf"), "must be more than 0 seconds"),
        ("db_timeout_s", float("nan"), "must be more than 0 seconds"),
        ("port", 65536, "must be 0 to 65535 (0 picks a free port)"),
        ("metrics_port", -1, "must be 0 to 65535 (0 picks a free port)"),
        ("workers", 0, "must be 1 or more"),
        ("max_message_bytes", 0, "must be 1 byte or more"),
        ("send_buffer_bytes", -1, "must be 0 (the kernel's own size) or more"),
        ("websockets_per_user", 0, "must be 1 or more"),
        ("chat_messages_per_s", 0.0, "must be more than 0 a second"),
    ],
)
def test_a_number_out_of_range_is_refused_by_name(name, value, rule):
    with pytest.raises(SettingError) as refused:
        ServerConfig(**{name: value})
    assert (refused.value.setting, refused.value.reason) == (name, rule)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ping_interval_s", 0.0),
        ("drain_delay_s", 0.0),
        ("port", 0),
        ("send_buffer_bytes", 0),
        ("port", 65535),
        ("workers", 1),
    ],
)
def test_the_edges_of_a_range_are_allowed(name, value):
    assert getattr(ServerConfig(**{name: value}), name) == value


@pytest.mark.parametrize(
    ("flags", "environ", "said"),
    [
        (
            ["--ping-interval", "-5"],
            {},
            "--ping-interval -5: must be 0 (no pings) or more seconds",
        ),
        (
            [],
            {"RAWWS_PING_INTERVAL": "-5"},
            "RAWWS_PING_INTERVAL=-5: must be 0 (no pings) or more seconds",
        ),
        (
            [],
            {"RAWWS_PING_INTERVAL_S": "-5"},
            "RAWWS_PING_INTERVAL_S=-5: must be 0 (no pings) or more seconds",
        ),
        (
            ["--port", "abc"],
            {},
            "--port abc: expected an integer (see `rawws serve --help`)",
        ),
        ([], {"RAWWS_PORT": "abc"}, "RAWWS_PORT=abc: expected an integer"),
        (
            [],
            {"RAWWS_DRAIN_DELAY_S": "soon"},
            "RAWWS_DRAIN_DELAY_S=soon: expected a number",
        ),
        (
            [],
            {"RAWWS_ECHO": "maybe"},
            "RAWWS_ECHO=maybe: expected true or false (also 1/0, yes/no, on/off)",
        ),
        ([], {"RAWWS_PORT": ""}, "RAWWS_PORT='': expected an integer"),
        (
            ["--workers", "0"],
            {"RAWWS_WORKERS": "2"},
            "--workers 0: must be 1 or more",
        ),  # the flag wins
        (["--tls-cert", "c.pem"], {}, "--tls-cert c.pem: TLS needs a key too"),
        (
            [],
            {"RAWWS_TLS_KEY": "k.pem"},
            "RAWWS_TLS_KEY=k.pem: TLS needs a certificate too",
        ),
    ],
)
def test_a_flag_and_its_variable_are_refused_alike_and_by_their_own_name(
    flags, environ, said
):
    args = build_parser().parse_args(["serve", *flags])
    with pytest.raises(SettingError) as refused:
        serve_config(args, environ=environ)
    assert str(refused.value) == said


def test_a_password_in_a_url_is_never_said():
    with pytest.raises(SettingError) as refused:
        from_env(
            {
                "RAWWS_DB_URL": "postgresql+asyncpg://ada:hunter2@db/rawws",
                "RAWWS_PORT": "x",
            }
        )
    assert str(refused.value) == "RAWWS_PORT=x: expected an integer"
    config = from_env({"RAWWS_DB_URL": "postgresql+asyncpg://ada:hunter2@db/rawws"})
    assert "hunter2" not in repr(config)
