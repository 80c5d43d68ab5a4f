"""rawws: a WebSocket chat service built at the protocol level (h11 + wsproto on asyncio)."""

__version__ = "0.1.0"
