"""Echo servers for the benchmark, one small script each, every one started as its own process.

Each takes ``--host``, ``--port`` and ``--uvloop`` and serves until SIGTERM/SIGINT:

* ``rawws_uvloop``   — installs the uvloop policy, then hands over to ``rawws.cli.main``
  (plain rawws is started as ``python -m rawws serve --echo --no-compression …``);
* ``websockets_echo``— websockets' asyncio server, compression off;
* ``picows_echo``    — picows, frame-level echo;
* ``aiohttp_echo``   — aiohttp's ``WebSocketResponse``, compression off;
* ``floor_echo``     — the floor: length-prefixed TCP echo on an asyncio ``Protocol``, no WebSocket.

Every WebSocket server serves ``/echo``, echoes each message as it came
(binary as binary, text as text), and accepts messages up to 1 MiB (rawws's default).
"""
