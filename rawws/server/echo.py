"""The `/echo` endpoint: every message goes back as it came. What Autobahn tests.

It is an ordinary ``WebSocketHandler`` on the same session code the chat uses.
"""

from __future__ import annotations

from rawws.server.connection import ServerConnection


class EchoHandler:
    def on_open(self, session: ServerConnection) -> None:
        pass

    def on_message(self, session: ServerConnection, data: str | bytes) -> None:
        session.send(data)

    def on_close(self, session: ServerConnection, code: int) -> None:
        pass
