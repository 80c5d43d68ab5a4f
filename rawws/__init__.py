"""rawws: WebSockets at the protocol level (h11 + wsproto on asyncio), and a chat service built on them.

The library: ``serve``, ``connect``, ``broadcast``, ``ServerConnection``,
``ClientConnection`` and the ``ConnectionClosed`` errors (docs/api.md). Each is
imported on first use, so ``import rawws`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rawws._version import __version__

if TYPE_CHECKING:
    from rawws.client.connect import connect
    from rawws.client.connection import ClientConnection
    from rawws.errors import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
    from rawws.server.broadcast import broadcast
    from rawws.server.connection import ServerConnection
    from rawws.server.serve import serve

__all__ = [
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

#: public name → the module that defines it
_LAZY = {
    "serve": "rawws.server.serve",
    "broadcast": "rawws.server.broadcast",
    "ServerConnection": "rawws.server.connection",
    "connect": "rawws.client.connect",
    "ClientConnection": "rawws.client.connection",
    "ConnectionClosed": "rawws.errors",
    "ConnectionClosedOK": "rawws.errors",
    "ConnectionClosedError": "rawws.errors",
}


def __getattr__(name: str) -> Any:
    """``rawws.serve`` and the rest are imported on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rawws' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup does not come here
    return value
