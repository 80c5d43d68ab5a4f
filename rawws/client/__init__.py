"""The asyncio client: `rawws.connect`, and the chat client behind `rawws chat --user` and `rawws send --user`.

Sans I/O (tested without a socket; tests/e2e/test_chat_cli.py keeps them free of asyncio, socket and ssl):
  commands.py    a typed line → ``Say`` or a ``/command``, checked by the server's own rules
  state.py       ``ChatState``: rooms, dedupe by room:id, recovery with ``since``; the screen lines
  target.py      the URL rule of a ``--user`` client, built on the client handshake's ``parse_uri``
  login.py       the ``/auth/login`` and ``/auth/ticket`` requests and answers (h11), ``AuthFailed``
  reconnect.py   which closes are worth reconnecting after, the jittered backoff, how a failure reads

The asyncio edge:
  connection.py  ``connect`` (``rawws.connect``) and the TLS settings every client connection uses
  protocol.py    ``ClientConnection``: one WebSocket's reads, writes, keepalive and close
  closed.py      ``ConnectionClosed`` and its OK/Error kinds: how a connection ended
  chat_login.py  ``ChatLogin``: one login, then a fresh ticket per connection, over its own HTTP requests
  terminal.py    the line editor (no I/O) and the raw-mode and plain-line terminals
  session.py     ``chat()`` and ``chat_session()``: a terminal tied to a connection, reconnecting for the chat
"""
