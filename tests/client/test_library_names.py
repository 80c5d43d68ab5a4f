"""The library's public names (``rawws.serve``, ``rawws.connect``, …) and the defaults both ends share."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import rawws
import rawws.config as config
from rawws.aio.inbox import DEFAULT_MAX_QUEUE
from rawws.client.connect import connect
from rawws.client.connection import ClientConnection
from rawws.errors import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from rawws.server.broadcast import broadcast
from rawws.server.connection import ServerConnection
from rawws.server.serve import serve

CLIENT = Path(rawws.__file__).parent / "client"


def test_the_library_is_exported_from_the_package():
    assert (rawws.serve, rawws.connect, rawws.broadcast) == (serve, connect, broadcast)
    assert rawws.ServerConnection is ServerConnection
    assert rawws.ClientConnection is ClientConnection
    assert (
        rawws.ConnectionClosed,
        rawws.ConnectionClosedOK,
        rawws.ConnectionClosedError,
    ) == (ConnectionClosed, ConnectionClosedOK, ConnectionClosedError)
    assert sorted(rawws.__all__) == sorted(
        [
            "ClientConnection",
            "ConnectionClosed",
            "ConnectionClosedError",
            "ConnectionClosedOK",
            "ServerConnection",
            "__version__",
            "broadcast",
            "connect",
            "serve",
        ]
    )


def test_import_rawws_stays_light():
    """Nothing of asyncio, h11 or wsproto is imported until a name is used."""
    code = (
        "import sys, rawws\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('asyncio', 'h11', 'wsproto', 'ssl') or m.startswith('rawws.'))\n"
        "print(heavy)\n"
        "rawws.serve\n"
        "print('rawws.server.serve' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.splitlines() == ["['rawws._version']", "True"], result.stderr


def test_the_client_uses_the_servers_defaults():
    """Keepalive, close timeout and message size come from rawws.config; the queue from the shared inbox."""
    connect_defaults = inspect.signature(connect).parameters
    connection_defaults = inspect.signature(ClientConnection).parameters
    serve_defaults = inspect.signature(serve).parameters
    for name, value in (
        ("ping_interval", config.DEFAULT_PING_INTERVAL_S),
        ("ping_timeout", config.DEFAULT_PING_TIMEOUT_S),
        ("close_timeout", config.DEFAULT_CLOSE_TIMEOUT_S),
        ("max_queue", DEFAULT_MAX_QUEUE),
    ):
        assert connect_defaults[name].default == value, name
        assert connection_defaults[name].default == value, name
        assert serve_defaults[name].default == value, name
    assert connect_defaults["max_size"].default == config.DEFAULT_MAX_MESSAGE_BYTES
    assert (
        serve_defaults["max_message_size"].default == config.DEFAULT_MAX_MESSAGE_BYTES
    )


def test_the_client_defines_no_default_of_its_own_for_what_the_server_sets():
    """A number the server also has is imported, never written again in rawws/client."""
    shared = {
        "PING_INTERVAL",
        "PING_TIMEOUT",
        "CLOSE_TIMEOUT",
        "MAX_MESSAGE",
        "MAX_QUEUE",
        "HIGH_WATER",
    }
    for path in CLIENT.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        assert not any(part in target.id for part in shared), (
                            f"{path.name} defines {target.id}"
                        )
