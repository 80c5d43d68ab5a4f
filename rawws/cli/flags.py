"""`rawws serve`'s flags, built from ``ServerConfig``'s fields: one flag per setting, in the field's group,
with the field's help and the field's default (``rawws.config``; ``rawws.core.settings`` says how a
field describes itself). Nothing here names a setting but ``--log-level``, which is the CLI's own.

A flag's value is kept as text (``None`` when the flag is not given): `rawws serve` reads it with the
setting's unit and checks it by the setting's rule (``rawws.cli.serve.serve_config``), as the text of its
``RAWWS_*`` variable is read, so a flag and its variable take the same values and are refused in the
same words.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from rawws.config import (
    ACCOUNTS,
    CHAT,
    HOOKS,
    HTTP,
    LISTEN,
    NODES,
    OPERATIONS,
    SETTINGS,
    STORE,
    WEBSOCKET,
)
from rawws.core.settings import SWITCH, Group, flag_of, help_of, unit_of

#: The sections of `rawws serve --help`, in this order.
GROUPS = (LISTEN, WEBSOCKET, HTTP, CHAT, STORE, ACCOUNTS, HOOKS, NODES, OPERATIONS)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_LOG_LEVEL = "INFO"


def add_setting_flag(
    section: argparse._ArgumentGroup, setting: dataclasses.Field[Any], flag: str
) -> None:
    """One setting's flag (and its ``--no-…`` form, if it has one); ``dest`` is the field's name."""
    meta, unit = setting.metadata, unit_of(setting)
    options: dict[str, Any] = {"dest": setting.name, "default": None}
    if unit is SWITCH:
        options["action"] = argparse.BooleanOptionalAction
    else:
        options["metavar"] = meta.get("metavar", unit.metavar)
        if "choices" in meta:
            options["choices"], options["metavar"] = meta["choices"], None
        if meta.get("repeat"):
            options["action"] = "append"
    help_text = help_of(setting).replace("%", "%%")  # argparse formats help with %
    section.add_argument(flag, help=help_text, **options)
    if "negative" in meta:
        negative, value = meta["negative"]
        section.add_argument(
            negative,
            dest=setting.name,
            action="store_const",
            const=value,
            help=f"the same as {flag} {value}",
        )


def add_serve_flags(command: argparse.ArgumentParser) -> None:
    """Every setting's flag, grouped as the settings are, then ``--log-level``."""
    sections = {group: _section(command, group) for group in GROUPS}
    for setting in SETTINGS:
        flag = flag_of(setting)
        if flag is not None:
            add_setting_flag(sections[setting.metadata["group"]], setting, flag)
    sections[OPERATIONS].add_argument(
        "--log-level",
        default=DEFAULT_LOG_LEVEL,
        choices=LOG_LEVELS,
        help=f"DEBUG adds a line per HTTP request and refusal (default {DEFAULT_LOG_LEVEL})",
    )
    command.set_defaults(
        env_aliases=flag_variables(command), flag_names=flag_names(command)
    )


def _section(command: argparse.ArgumentParser, group: Group) -> argparse._ArgumentGroup:
    return command.add_argument_group(group.title, group.about)


def flag_variables(command: argparse.ArgumentParser) -> dict[str, str]:
    """Each setting flag's own spelling as an environment name: ``--db`` → ``DB`` → ``db_url``."""
    aliases: dict[str, str] = {}
    for action in command._actions:
        for option in action.option_strings:
            if option.startswith("--") and action.dest not in ("help", "log_level"):
                name = option[2:].replace("-", "_").upper()
                if name.startswith("NO_"):
                    continue  # --no-compression: the variable is RAWWS_COMPRESSION=false
                aliases[name] = action.dest
    return aliases


def flag_names(command: argparse.ArgumentParser) -> dict[str, str]:
    """Each setting's flag, as a message names it: ``db_url`` → ``--db`` (``--compression``, not ``--no-…``)."""
    names: dict[str, str] = {}
    for action in command._actions:
        for option in action.option_strings:
            if (
                option.startswith("--")
                and not option.startswith("--no-")
                and action.dest not in names
            ):
                names[action.dest] = option
    return names
