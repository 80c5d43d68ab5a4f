"""Sans-I/O WebSocket and HTTP pieces for both roles: bytes in, events out; no asyncio, socket, ssl, database or Redis import."""
