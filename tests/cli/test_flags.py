"""`rawws serve`'s flags are built from ``ServerConfig``'s fields: every setting has a flag and variables that
set it, and `--help` shows each default as the config has it (from the field, never a copy)."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rawws.cli.flags import GROUPS, flag_variables
from rawws.cli.parser import build_parser, build_serve_parser
from rawws.cli.serve import serve_config
from rawws.config import (
    SETTINGS,
    ServerConfig,
    from_env,
    setting_value,
)
from rawws.core.settings import (
    COUNT,
    INTEGER,
    PORT,
    RATE,
    SECONDS,
    SIZE,
    SWITCH,
    Group,
    flag_of,
    help_of,
    show_size,
    shown_default,
    unit_of,
)
from rawws.errors import SettingError

ROOT = Path(__file__).resolve().parents[2]
#: The flags the README and the tests named before the parser was generated: each keeps its spelling
#: and the setting it sets.
DOCUMENTED = {
    "--host": "host",
    "--port": "port",
    "--echo": "echo",
    "--tls-cert": "tls_cert",
    "--tls-key": "tls_key",
    "--compression": "compression",
    "--no-compression": "compression",
    "--compression-window-bits": "compression_window_bits",
    "--max-message-size": "max_message_bytes",
    "--ping-interval": "ping_interval_s",
    "--ping-timeout": "ping_timeout_s",
    "--handshake-timeout": "handshake_timeout_s",
    "--data-dir": "data_dir",
    "--db": "db_url",
    "--db-timeout": "db_timeout_s",
    "--bus": "bus_url",
    "--workers": "workers",
    "--allow-origin": "allowed_origins",
    "--jwt-public-key": "jwt_public_key",
    "--jwt-public-algorithm": "jwt_public_algorithm",
    "--jwt-public-namespace": "jwt_public_namespace",
    "--forwarded-allow-ips": "forwarded_allow_ips",
    "--metrics-port": "metrics_port",
    "--metrics-host": "metrics_host",
    "--drain-delay": "drain_delay_s",
    "--refresh-ttl": "refresh_ttl_s",
    "--registrations-per-hour-per-address": "registrations_per_hour_per_address",
    "--tickets-per-minute-per-user": "tickets_per_minute_per_user",
    "--websockets-per-user": "websockets_per_user",
    "--websockets-per-address": "websockets_per_address",
    "--send-buffer": "send_buffer_bytes",
    "--log-level": "log_level",
    "--log-format": "log_format",
}
#: Settings with no flag, on purpose: a command line is readable by every user of the machine.
NO_FLAG = {"jwt_secret"}
#: Values for the settings whose text a generic one would not fit (a URL, an address, a pair).
TEXTS = {
    "host": "0.0.0.0",
    "metrics_host": "::1",
    "db_url": "postgresql+asyncpg://u@h/db",
    "bus_url": "redis://127.0.0.1:6379/0",
    "allowed_origins": "https://a.example,https://b.example",
    "forwarded_allow_ips": "10.0.0.0/8,127.0.0.1",
    "jwt_secret": "s" * 32,
    "hook_url": "https://app.example/rawws-hooks",
    "hook_say_rooms": "support,ops-*",
}
PARTNERS = {
    "tls_cert": ("tls_key", "key.pem"),
    "tls_key": ("tls_cert", "cert.pem"),
    "hook_url": ("hook_secret_file", "hook-key"),
}


def a_value(setting: dataclasses.Field[Any]) -> tuple[str, object]:
    """Text for ``setting`` other than its default, and the value it must read as."""
    unit, default, name = unit_of(setting), setting.default, setting.name
    if name in TEXTS:
        text = TEXTS[name]
        return text, tuple(text.split(",")) if isinstance(default, tuple) else text
    if "choices" in setting.metadata:
        other = next(c for c in setting.metadata["choices"] if c != default)
        return other, other
    if unit is SWITCH:
        return "yes", not default
    if unit is SIZE:
        return show_size(2 * default), 2 * default
    if unit.show is SECONDS.show or unit is RATE:
        return repr(default + 1.5), default + 1.5
    if unit in (COUNT, PORT) or unit.parse is INTEGER.parse:
        value = 9101 if default is None else default + 1
        return str(value), value
    return "somewhere", "somewhere"


def given(name: str, environ: dict[str, str] | None = None, *flags: str) -> Any:
    args = build_serve_parser().parse_serve(list(flags))
    return getattr(serve_config(args, environ=environ or {}), name)


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_every_setting_is_a_flag_and_variables(setting: dataclasses.Field[Any]) -> None:
    text, value = a_value(setting)
    assert value != setting.default
    partner = PARTNERS.get(setting.name)
    other_env = {f"RAWWS_{partner[0].upper()}": partner[1]} if partner else {}
    # RAWWS_<FIELD>, the name the README's table gives
    variable = f"RAWWS_{setting.name.upper()}"
    assert given(setting.name, {variable: text, **other_env}) == value
    flag = flag_of(setting)
    if setting.name in NO_FLAG:
        assert flag is None
        return
    assert flag is not None
    # the flag, and RAWWS_ + the flag's spelling
    other_flags = [f"--{partner[0].replace('_', '-')}", partner[1]] if partner else []
    if unit_of(setting) is SWITCH:
        assert given(setting.name, {}, flag, *other_flags) is True
        assert given(setting.name, {variable: "1"}, f"--no-{flag[2:]}") is False
    elif setting.metadata.get("repeat"):
        repeated = [part for item in text.split(",") for part in (flag, item)]
        assert given(setting.name, {}, *repeated) == value
    else:
        assert given(setting.name, {}, flag, text, *other_flags) == value
    spelled = "RAWWS_" + flag[2:].replace("-", "_").upper()
    assert given(setting.name, {spelled: text, **other_env}) == value


def test_no_setting_lacks_a_flag_but_the_secret() -> None:
    assert {s.name for s in SETTINGS if flag_of(s) is None} == NO_FLAG
    assert "RAWWS_JWT_SECRET" in build_serve_parser().format_help()


def test_the_documented_flags_keep_their_spellings() -> None:
    parser = build_serve_parser()
    found = {
        option: action.dest
        for action in parser._actions
        for option in action.option_strings
    }
    assert {flag: found.get(flag) for flag in DOCUMENTED} == DOCUMENTED


def test_a_flag_spelling_never_names_another_setting() -> None:
    aliases = flag_variables(build_serve_parser())
    fields = {s.name.upper(): s.name for s in SETTINGS}
    assert all(fields.get(alias, name) == name for alias, name in aliases.items())
    assert set(aliases.values()) == {s.name for s in SETTINGS} - NO_FLAG


def test_every_group_is_a_section_of_the_help() -> None:
    assert {s.metadata["group"] for s in SETTINGS} <= set(GROUPS)
    titles = [group.title for group in build_serve_parser()._action_groups]
    assert titles[-len(GROUPS) :] == [group.title for group in GROUPS]


def help_entries() -> dict[str, str]:
    """What `rawws serve --help` prints, one entry per flag (``--port``: ``--port PORT port to …``)."""
    shown = subprocess.run(
        [sys.executable, "-m", "rawws", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"COLUMNS": "200"},
        check=True,
    ).stdout
    entries: list[list[str]] = []
    for line in shown.splitlines():
        if line.startswith("  -"):
            entries.append([line.strip()])
        elif line.startswith("    ") and entries:
            entries[-1].append(line.strip())
        elif not line.strip() or not line.startswith(" "):
            entries.append([])  # a section ends the entry before it
    joined = [" ".join(entry) for entry in entries if entry]
    return {entry.split(" ")[0].rstrip(","): entry for entry in joined}


def test_the_help_shows_each_default_as_the_config_has_it() -> None:
    entries = help_entries()
    config = ServerConfig()
    for setting in SETTINGS:
        flag = flag_of(setting)
        if flag is None:
            continue
        entry = entries[flag]
        assert entry.count("(default ") == 1, entry  # no default typed into a help text
        said = re.search(r"\(default (.*)\)$", entry)
        assert said is not None, entry
        assert said.group(1) == shown_default(setting), entry
        default = getattr(config, setting.name)
        if default is None or default == ():
            assert said.group(1) == setting.metadata.get("unset", "none")
            continue
        # what the help says reads back as the config's default
        assert setting_value(setting.name, said.group(1).split(" ")[0]) == default


def test_a_help_line_is_made_from_its_field() -> None:
    @dataclasses.dataclass(frozen=True)
    class Settings:
        wait_s: float = Group("g")(7.5, "time to wait", SECONDS.zero_means("never"))
        size_bytes: int = Group("g")(3 * 1024, "how much", SIZE, flag="--much")

    wait, size = dataclasses.fields(Settings)
    assert help_of(wait) == "time to wait; 0: never (default 7.5 s)"
    assert (flag_of(wait), flag_of(size)) == ("--wait", "--much")
    assert help_of(size) == "how much (default 3KiB)"


def test_sizes_read_alike_from_a_flag_and_a_variable() -> None:
    assert given("max_message_bytes", {"RAWWS_MAX_MESSAGE_BYTES": "64KiB"}) == 65536
    assert given("max_header_bytes", {}, "--max-header-size", "32k") == 32768
    assert (
        from_env(
            {"RAWWS_SEND_BUFFER": "0"}, aliases=flag_variables(build_serve_parser())
        ).send_buffer_bytes
        == 0
    )
    with pytest.raises(SettingError) as refused:
        given("outbox_max_bytes", {}, "--outbox-max-size", "lots")
    assert str(refused.value) == (
        "--outbox-max-size lots: expected a size: bytes, or with a unit "
        "(1048576, 64KiB or 16MiB) (see `rawws serve --help`)"
    )


def test_a_negative_size_is_said_by_its_rule() -> None:
    with pytest.raises(SettingError) as refused:
        from_env({"RAWWS_SEND_BUFFER_BYTES": "-1"})
    assert str(refused.value) == (
        "RAWWS_SEND_BUFFER_BYTES=-1: must be 0 (the kernel's own size) or more"
    )


def test_a_choice_is_checked_for_a_variable_as_for_its_flag() -> None:
    with pytest.raises(SettingError) as refused:
        from_env({"RAWWS_JWT_PUBLIC_ALGORITHM": "HS256"})
    assert str(refused.value) == (
        "RAWWS_JWT_PUBLIC_ALGORITHM=HS256: must be RS256, ES256 or EdDSA"
    )


def test_the_bench_parser_has_the_same_flags() -> None:
    full = build_parser()
    commands = next(action for action in full._actions if action.dest == "command")
    serve = commands.choices["serve"]
    options = {o for a in serve._actions for o in a.option_strings}
    assert options == {
        o for a in build_serve_parser()._actions for o in a.option_strings
    }
