"""The chat where WebSocket can't pass: Server-Sent Events, long-polling and ``POST /send`` (docs/transports.md)."""
