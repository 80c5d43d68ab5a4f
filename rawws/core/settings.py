"""How a setting is declared and read: a dataclass field with its group, help text and unit.

Knows no particular setting (``rawws.config`` declares them): a ``Group`` called
with a default, a help text and a ``Unit`` makes a field whose metadata is
everything a command line or an environment needs to know of it. A unit turns
text into a value (``ValueError("expected …")`` when it cannot), shows a value
as text that reads back, and has the rule every value meets unless its field
gives its own. No I/O.
"""

from __future__ import annotations

import dataclasses
import math
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from rawws.core.redact import HIDDEN, redact_url
from rawws.errors import SettingError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

Rule = tuple[
    Callable[[Any], bool], str
]  # whether a value is allowed, and the rule said


def seconds_rule(zero: str | None = None) -> Rule:
    """A duration: finite, above 0, or 0 too when 0 means something (``zero`` says what)."""
    if zero is None:
        return (lambda v: math.isfinite(v) and v > 0), "must be more than 0 seconds"
    said = f"must be 0 ({zero}) or more seconds"
    return (lambda v: math.isfinite(v) and v >= 0), said


def at_least(low: int, what: str = "") -> Rule:
    return (lambda value: value >= low), f"must be {low}{what} or more"


def between(low: int, high: int, what: str = "") -> Rule:
    return (lambda value: low <= value <= high), f"must be {low} to {high}{what}"


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_EXPECTED = {
    int: "an integer",
    float: "a number",
    bool: "true or false (also 1/0, yes/no, on/off)",
}
_SIZE = re.compile(r"(-?\d+)\s*([kKmMgG]i?[bB]?)?")  # a sign, so the rule says "-1"
_SIZE_UNITS = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))
SIZE_EXAMPLES = "1048576, 64KiB or 16MiB"


def convert(raw: str, kind: type) -> object:
    """``raw`` as a value of ``kind``; ``ValueError("expected …")`` naming the type when it is not one."""
    if kind is tuple:
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
    elif kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    else:
        return raw
    raise ValueError(f"expected {_EXPECTED[kind]}")


def parse_size(text: str) -> int:
    """``1048576``, ``1MiB``, ``64k``, ``16MB`` → bytes (units are powers of 1024)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"expected a size: bytes, or with a unit ({SIZE_EXAMPLES})")
    scale = {name[0]: size for name, size in _SIZE_UNITS}
    return int(match.group(1)) * scale.get((match.group(2) or " ")[0].upper(), 1)


def show_size(value: int) -> str:
    """Bytes as ``parse_size`` reads them back: ``1MiB``, ``256KiB``, ``1000``."""
    for name, size in _SIZE_UNITS:
        if value and value % size == 0:
            return f"{value // size}{name}"
    return str(value)


def show_seconds(value: float) -> str:
    """``20 s``, ``0.5 s``; a long one in words too: ``2592000 s, 30 days``."""
    text = f"{int(value)}" if float(value).is_integer() else repr(float(value))
    for word, length in (("days", 86400), ("h", 3600), ("min", 60)):
        if value >= 2 * length and value % length == 0:
            return f"{text} s, {int(value // length)} {word}"
    return f"{text} s"


@dataclass(frozen=True, slots=True)
class Unit:
    """A kind of setting: the flag's metavar, text → value, value → text that reads back, and the rule
    every value of it meets unless its field gives its own."""

    metavar: str | None
    parse: Callable[[str], Any]
    show: Callable[[Any], str] = str
    rule: Rule | None = None
    zero: str | None = None  # what 0 means, when it means something

    def zero_means(self, meaning: str) -> Unit:
        """The same durations, 0 allowed too: it means ``meaning``."""
        return dataclasses.replace(self, rule=seconds_rule(meaning), zero=meaning)

    def within(self, low: int, high: int) -> Unit:
        """The same numbers, from ``low`` to ``high``."""
        return dataclasses.replace(
            self, metavar=f"{low}..{high}", rule=between(low, high)
        )


TEXT = Unit(None, str)
SWITCH = Unit(None, lambda raw: convert(raw, bool), lambda v: "on" if v else "off")
LIST = Unit("LIST", lambda raw: convert(raw, tuple), ",".join)
SECONDS = Unit("SECONDS", lambda raw: convert(raw, float), show_seconds, seconds_rule())
SIZE = Unit("SIZE", parse_size, show_size, at_least(1, " byte"))
INTEGER = Unit("N", lambda raw: convert(raw, int))  # its field gives the rule
COUNT = dataclasses.replace(INTEGER, rule=at_least(1))
PORT = Unit(
    "PORT",
    INTEGER.parse,
    rule=between(0, 65535, " (0 picks a free port)"),
    zero="any free port",
)
RATE = Unit(
    "PER_SECOND",
    lambda raw: convert(raw, float),
    lambda v: f"{v:g}",
    ((lambda v: math.isfinite(v) and v > 0), "must be more than 0 a second"),
)


@dataclass(frozen=True, slots=True)
class Group:
    """Settings shown together (one section of ``--help``); calling it declares a field of the group.

    ``help`` says what the setting is (the default is shown from the field, never typed in a
    text); ``unit`` how it is read; ``extra``: ``flag`` (``None``: no flag; else ``flag_of``
    makes it from the name), ``metavar``, ``rule``, ``choices``, ``unset`` (words for a ``None``
    default), ``negative`` (``("--no-x", value)``), ``repeat`` (each use of the flag adds one).
    """

    title: str
    about: str | None = None

    def __call__(self, default: Any, help: str, unit: Unit = TEXT, **extra: Any) -> Any:
        in_repr = extra.pop("repr", True)
        meta = {"group": self, "help": help, "unit": unit, **extra}
        return field(default=default, repr=in_repr, metadata=meta)


def unit_of(setting: dataclasses.Field[Any]) -> Unit:
    unit: Unit = setting.metadata["unit"]
    return unit


def rule_of(setting: dataclasses.Field[Any]) -> Rule | None:
    """The field's own rule, else its unit's."""
    rule: Rule | None = setting.metadata.get("rule", unit_of(setting).rule)
    return rule


def one_of(choices: tuple[str, ...]) -> str:
    return ", ".join(choices[:-1]) + f" or {choices[-1]}"


def problem_with(setting: dataclasses.Field[Any], value: object) -> str | None:
    """What is wrong with ``value`` for this setting (its choices, its rule), or ``None``."""
    if value is None:
        return None
    choices: tuple[str, ...] | None = setting.metadata.get("choices")
    if choices is not None and value not in choices:
        return f"must be {one_of(choices)}"
    rule = rule_of(setting)
    return None if rule is None or rule[0](value) else rule[1]


def flag_of(setting: dataclasses.Field[Any]) -> str | None:
    """A setting's flag: its ``flag``, else its name in dashes, a size's ``-bytes`` said ``-size`` and
    a duration's ``-s`` left out (``max_message_bytes`` → ``--max-message-size``, ``ping_interval_s``
    → ``--ping-interval``)."""
    if "flag" in setting.metadata:
        flag: str | None = setting.metadata["flag"]
        return flag
    spelled, unit = "--" + setting.name.replace("_", "-"), unit_of(setting)
    if unit.show is show_size:
        spelled = spelled.removesuffix("-bytes") + "-size"
    return spelled.removesuffix("-s") if unit.show is show_seconds else spelled


def help_of(setting: dataclasses.Field[Any]) -> str:
    """The field's help, what 0 means if anything, and the field's default, as ``--help`` says them:
    ``port to listen on; 0: any free port (default 8765)``."""
    zero = unit_of(setting).zero
    said = (
        f"{setting.metadata['help']}; 0: {zero}" if zero else setting.metadata["help"]
    )
    return f"{said} (default {shown_default(setting)})"


def shown_default(setting: dataclasses.Field[Any]) -> str:
    """The default as ``--help`` says it, from the field itself: ``20 s``, ``1MiB``, ``off``."""
    if setting.default is None or setting.default == ():
        unset: str = setting.metadata.get("unset", "none")
        return unset
    return unit_of(setting).show(setting.default)


def shown(value: object, setting: dataclasses.Field[Any] | None = None) -> str:
    """A value as an error message may show it: numbers as typed (``-5``, not ``-5.0``), lists with
    commas, a ``url`` setting without its password, a ``secret`` one not at all."""
    meta = setting.metadata if setting is not None else {}
    if meta.get("secret"):
        return HIDDEN
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    text = "" if value is None else str(value)
    return redact_url(text) if meta.get("url") else text


def quoted(text: str) -> str:
    """A value as a shell would need it, quoted only when it must be (empty, or with spaces)."""
    if not text or any(char.isspace() for char in text):
        return shlex.quote(text)
    return text


# -- environment variables: PREFIX + the field's name, or + a flag's spelling (``aliases``) --


def variables(
    settings: Iterable[dataclasses.Field[Any]],
    prefix: str,
    aliases: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """Each setting's variables, its own name first (it wins): ``db_url`` → ``RAWWS_DB_URL``,
    ``RAWWS_DB`` (``aliases`` maps other spellings to settings)."""
    by_name = {setting.name: [prefix + setting.name.upper()] for setting in settings}
    for alias, name in (aliases or {}).items():
        if name in by_name and prefix + alias.upper() not in by_name[name]:
            by_name[name].append(prefix + alias.upper())
    return by_name


def read_environment(
    config: T,
    environ: Mapping[str, str],
    prefix: str,
    aliases: Mapping[str, str] | None,
) -> T:
    """``config`` with the settings ``environ`` sets, each read by its unit and checked by its rule;
    ``SettingError`` said of the variable (``RAWWS_PORT=abc: expected an integer``)."""
    settings = dataclasses.fields(config)
    names = variables(settings, prefix, aliases)
    changes: dict[str, Any] = {}
    # setting → "RAWWS_X=value", for the message of a check that spans settings
    named: dict[str, str] = {}
    for setting in settings:
        variable = next((v for v in names[setting.name] if v in environ), None)
        if variable is None:
            continue
        raw = environ[variable]
        head = f"{variable}={quoted(shown(raw, setting))}"
        try:
            value = unit_of(setting).parse(raw)
        except ValueError as exc:
            raise SettingError(
                setting.name, shown(raw, setting), str(exc), head
            ) from None
        problem = problem_with(setting, value)
        if problem is not None:
            raise SettingError(setting.name, shown(raw, setting), problem, head)
        changes[setting.name], named[setting.name] = value, head
    try:
        return dataclasses.replace(config, **changes)
    except SettingError as exc:
        raise exc.named(named[exc.setting]) if exc.setting in named else exc from None
