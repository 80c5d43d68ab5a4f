"""The asyncio server: ``rawws.serve``, ``ServerConnection``, ``rawws.broadcast``, and what `rawws serve` runs.

serve.py      ``serve``: a ``Server`` for one handler on every path, in one call
server.py     ``Server``: the listening socket, its endpoints and routes, start and graceful shutdown
http11.py     ``HttpConnection``: one TCP connection while it speaks HTTP/1.1 (h11, its transport)
upgrade.py    the upgrade: process_request, the handshake decision, credentials, limits, the 101
endpoint.py   what a WebSocket path is: its policy, handler kinds (coroutine or callbacks), authenticator
connection.py ``ServerConnection``: the read side and the two APIs (coroutine, callbacks)
edge.py       ``ConnectionEdge``: how frames leave (outbox, backpressure), keepalive, the end
flusher.py    one flush per loop turn for every connection written to from outside its read
broadcast.py  ``broadcast``: one message framed (and compressed) once for many connections
echo.py       ``/echo``, on the coroutine API (what Autobahn tests)
sweep.py, limits.py, listening.py, readiness.py, metrics.py, lifecycle.py: keepalive sweeps, per-user and
per-address limits, TLS and bind failures, /readyz and draining, Prometheus, `rawws serve` as a process
"""
