"""Settings from defaults, RAWWS_* variables and flags."""

from __future__ import annotations

import pytest

from rawws.cli import build_parser, parse_size, serve_config
from rawws.config import DEFAULT_MAX_MESSAGE_BYTES, ServerConfig, from_env


def test_defaults_are_safe():
    config = ServerConfig()
    assert config.host == "127.0.0.1"
    assert config.max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES == 1 << 20
    assert config.compression and not config.echo and not config.tls


def test_environment_overrides_defaults():
    config = from_env({"RAWWS_PORT": "9001", "RAWWS_ECHO": "yes", "RAWWS_PING_INTERVAL_S": "2.5", "OTHER": "x"})
    assert (config.port, config.echo, config.ping_interval_s) == (9001, True, 2.5)


@pytest.mark.parametrize(("name", "value"), [("RAWWS_PORT", "eighty"), ("RAWWS_ECHO", "maybe")])
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


@pytest.mark.parametrize(("text", "size"), [("100", 100), ("64k", 65536), ("1MiB", 1 << 20), ("16MB", 16 << 20)])
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("flags", "mode"),
    [([], "shared"), (["--compression", "dedicated"], "dedicated"), (["--compression", "off"], "off"),
     (["--no-compression"], "off")],
)
def test_compression_mode_flags(monkeypatch, flags, mode):
    monkeypatch.delenv("RAWWS_COMPRESSION", raising=False)
    assert serve_config(build_parser().parse_args(["serve", *flags])).compression == mode


@pytest.mark.parametrize(("value", "mode"), [("dedicated", "dedicated"), ("0", "off"), ("true", "shared")])
def test_compression_from_the_environment(value, mode):
    assert from_env({"RAWWS_COMPRESSION": value}).compression == mode


def test_compression_settings_are_bounded():
    with pytest.raises(ValueError):
        ServerConfig(compression="sometimes")
    with pytest.raises(ValueError):
        ServerConfig(compression_window_bits=8)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--compression-window-bits", "16"])
    assert ServerConfig(compression=False).compression == "off"
