"""The layers are folders (docs/architecture.md, "Layers"): what each folder may import.

Imports are read with ``ast``: ``sys.modules`` would lie, as any import pulls others in.
Every module of a folder is checked, so a new module is held to its folder's rule
without anyone adding it to a list.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "rawws"
IO_MODULES = {
    "asyncio",
    "socket",
    "ssl",
    "selectors",
    "sqlite3",
    "sqlalchemy",
    "asyncpg",
    "redis",
    "aiosqlite",
}
#: The library: the WebSocket implementation anyone can use (`rawws.serve`, `rawws.connect`, `rawws.broadcast`);
#: ``aio`` holds the asyncio pieces its two ends share (the receive queue).
LIBRARY = ("core", "aio", "server", "client")
#: The apps built on it: the chat service and what stands behind it, the chat clients, the command line.
APPS = (
    "chat",
    "accounts",
    "store",
    "bus",
    "transports",
    "apps",
    "chatclient",
    "api",
    "cli",
)
LAYERS = LIBRARY + APPS


def _rawws(*folders: str) -> tuple[str, ...]:
    return tuple(f"rawws.{folder}" for folder in folders)


#: folder → the rawws folders it may not import (besides ``rawws.cli``, which nothing imports)
FORBIDDEN_LAYERS = {
    # the library imports no app, and the sans-I/O core not even the edges of the library
    "core": _rawws("aio", "server", "client", *APPS),
    "aio": _rawws("server", "client", *APPS),
    "server": _rawws("client", *APPS),
    "client": _rawws("server", *APPS),
    # the store is the bottom of the apps; the bus is transport only (it carries bytes)
    "store": _rawws(
        "chat", "accounts", "bus", "transports", "apps", "chatclient", "api"
    ),
    "bus": _rawws(
        "chat", "accounts", "store", "transports", "apps", "chatclient", "api"
    ),
    "accounts": _rawws("chat", "transports", "apps", "chatclient", "api"),
    "chat": _rawws("transports", "apps", "chatclient", "api"),
    # the chat over SSE, long-polling and POST /send: the chat's sessions, other framing
    "transports": _rawws("apps", "chatclient", "api"),
    # the server API for applications stands on the chat (its rooms, fan-out and store)
    "apps": _rawws("chatclient", "api"),
    "chatclient": _rawws(
        "server", "accounts", "store", "bus", "transports", "apps", "api"
    ),
    # ``rawws.api``, the applications' client of /api/v1: the library's core and nothing else
    "api": _rawws(
        "aio",
        "server",
        "client",
        "chat",
        "accounts",
        "store",
        "bus",
        "transports",
        "apps",
        "chatclient",
    ),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            if node.module == "rawws":  # `from rawws import chat` names a module too
                names.update(f"rawws.{alias.name}" for alias in node.names)
    return names


def modules_of(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("path", modules_of("core"), ids=lambda p: p.name)
def test_core_does_no_io(path):
    imports = {name.split(".")[0] for name in imported_modules(path)}
    assert not imports & IO_MODULES, f"{path.name} imports {imports & IO_MODULES}"


@pytest.mark.parametrize(
    "path",
    [path for folder in FORBIDDEN_LAYERS for path in modules_of(folder)],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_layer_imports_only_below_itself(path):
    forbidden = FORBIDDEN_LAYERS[path.relative_to(PACKAGE).parts[0]]
    wrong = {
        name
        for name in imported_modules(path)
        for prefix in forbidden
        if within(name, prefix)
    }
    assert not wrong, f"{path.relative_to(PACKAGE)} imports {sorted(wrong)}"


def test_nothing_imports_the_cli():
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "cli" or path.name == "__main__.py":
            continue
        assert not any(within(name, "rawws.cli") for name in imported_modules(path)), (
            path
        )


def test_every_folder_has_its_rule():
    assert set(FORBIDDEN_LAYERS) == set(LAYERS) - {"cli"}


def test_only_a_handful_of_modules_sit_outside_the_layers():
    loose = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert (
        loose
        == [
            "__init__.py",
            "__main__.py",
            "_version.py",
            "config.py",
            "config_hooks.py",  # the hooks' settings, which ServerConfig inherits (the same cap)
            "defaults.py",  # config.py's defaults, kept apart so config.py stays under 500 lines
            "errors.py",
        ]
    )
    folders = sorted(
        path.name
        for path in PACKAGE.iterdir()
        if path.is_dir() and (path / "__init__.py").exists()
    )
    assert set(folders) <= set(LAYERS), folders


def test_no_module_is_over_500_lines():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 500
    }
    assert not long, long
