"""rawws: a WebSocket chat service built at the protocol level (h11 + wsproto on asyncio)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rawws._version import __version__

if TYPE_CHECKING:
    from rawws.client.connect import connect

__all__ = ["__version__", "connect"]


def __getattr__(name: str) -> Any:
    """``rawws.connect`` is imported on first use, so ``import rawws`` stays light."""
    if name == "connect":
        from rawws.client.connect import connect

        return connect
    raise AttributeError(f"module 'rawws' has no attribute {name!r}")
