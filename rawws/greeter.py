"""The authenticated `/ws` endpoint until the chat lands: greet the user by name, echo what they send."""

from __future__ import annotations

import json

from rawws.session import WebSocketSession


class GreeterHandler:
    def on_open(self, session: WebSocketSession) -> None:
        user = session.identity.user if session.identity else None
        session.send(json.dumps({"type": "welcome", "user": user, "rooms": []}, separators=(",", ":")))

    def on_message(self, session: WebSocketSession, data: str | bytes) -> None:
        session.send(data)

    def on_close(self, session: WebSocketSession, code: int) -> None:
        pass
