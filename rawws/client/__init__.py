"""The asyncio client: ``rawws.connect`` (the chat clients built on it are in ``rawws.chatclient``).

connect.py     ``connect`` (``rawws.connect``) and the TLS settings every client connection uses
connection.py  ``ClientConnection``: one WebSocket's writes, keepalive and close; what it receives
               waits in a ``rawws.aio.inbox.Inbox``, as on the server
"""
