"""The sessions' routes on a chat service's server: ``add_transports`` (called by ``setup_service``)."""

from __future__ import annotations

from rawws.accounts.upgrade_auth import WebSocketAuthenticator
from rawws.chat.app import ChatApp
from rawws.server.server import Server
from rawws.transports.routes import TransportRoutes
from rawws.transports.sessions import Sessions


def add_transports(server: Server, app: ChatApp) -> Sessions:
    """Mount ``/sse``, ``/poll`` and ``/send``; the sessions end when the server stops."""
    sessions = Sessions(app.chat, app.handler, server.config, server.counters)
    opening = app.authenticate
    # A request that uses a session is not a new connection: the app's connect hook is not asked.
    acting = WebSocketAuthenticator(
        opening.tokens,
        opening.ledger,
        opening.allowed_origins,
        tls=opening.tls,
        shared_spend=opening.shared_spend,
        check_stopped=opening.check_stopped,
    )
    if (
        app.bus is not None
    ):  # several nodes: commands reach a session wherever they land
        sessions.forward = app.chat.feed.forward_commands
        app.chat.feed.on_commands = sessions.run_forwarded
    TransportRoutes(server, sessions, opening, acting).add_to(server)
    server.on_closing.append(sessions.stop_all)
    server.on_shutdown.insert(0, sessions.close)
    return sessions
