"""The sans-I/O rule (DESIGN §1): core modules import no asyncio, socket, ssl or drivers.

Imports are read with ``ast``: ``sys.modules`` would lie, as any import pulls others in.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "rawws"
CORE = [
    "auth",
    "chat",
    "client_handshake",
    "config",
    "connection",
    "errors",
    "events",
    "extensions",
    "frames",
    "handshake",
    "headers",
    "http",
    "hub",
    "masking",
    "outbox",
    "passwords",
    "ratelimit",
]
FORBIDDEN = {"asyncio", "socket", "ssl", "selectors", "sqlite3", "sqlalchemy", "asyncpg", "redis", "aiosqlite"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", CORE)
def test_core_module_does_no_io(module):
    imports = {name.split(".")[0] for name in imported_modules(PACKAGE / f"{module}.py")}
    assert not imports & FORBIDDEN


def test_nothing_imports_the_cli():
    for path in PACKAGE.rglob("*.py"):
        if path.name not in {"cli.py", "__main__.py"}:
            assert "rawws.cli" not in imported_modules(path), path
