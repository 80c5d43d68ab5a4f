"""The benchmark's servers, one small script each, every one started as its own process.

Each takes ``--host``, ``--port`` and ``--uvloop`` and serves until SIGTERM/SIGINT:

* ``rawws_server``   — ``rawws serve`` (its own parser, config and routes) plus ``/fanout``;
  takes rawws's arguments, with ``--uvloop`` first: ``python -m bench.servers.rawws_server
  [--uvloop] serve --echo --no-compression --port P``;
* ``rawws_library``  — rawws as a library: ``rawws.serve`` with coroutine handlers and
  ``rawws.broadcast``, no chat (impl ``rawws-lib``);
* ``websockets_echo``— websockets' asyncio server, compression off;
* ``picows_echo``    — picows, frame-level;
* ``aiohttp_echo``   — aiohttp's ``WebSocketResponse``, compression off;
* ``floor_echo``     — the floor: length-prefixed TCP on an asyncio ``Protocol``, no WebSocket.

Every WebSocket server serves ``/echo``, which echoes each message as it came
(binary as binary, text as text), and ``/fanout``, which sends each message, as
it came, to every other open ``/fanout`` connection (not back to its sender);
all accept messages up to 1 MiB (rawws's default). The floor's stand-in for
``/fanout`` is a connection whose first 4 bytes are ``FANO``.
"""
