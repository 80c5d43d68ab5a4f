"""The overhead study (Part 1 of the benchmark issue): one ticker feed by short polling, long polling and WebSocket push.

    python -m experiments.overhead [--quick] [--duration 30] [--rate 1] [--poll-interval 1] [--delay-ms 50]

A small server written for the study (``server.py``, ``serve``) runs as its own
process. It is rawws's own ``Server``: plain HTTP routes from its ``Router``
for the two polling endpoints, ``add_websocket`` for the push endpoint — so
all three go through the same h11 and wsproto code and send what rawws
really sends. Compression is off (a ~20-byte message is framing vs framing).
It publishes ~20-byte text messages (``000042 ACME  101.25``) at Poisson
times with a configurable mean rate:

* ``GET /poll?since=N``     — short polling: whatever was published after N, at once (maybe nothing);
* ``GET /longpoll?since=N`` — long polling: the same, but held until there is something (or 25 s);
* ``/ticker``               — WebSocket: every message pushed as one text frame as it is published;
* ``GET /log``              — after the run: publish times, for the latency join (not counted).

Simulated users (asyncio, raw streams, one TCP connection each, HTTP
keep-alive) consume the feed with two header sets: the exact request bytes a
current Chromium sent (captured by ``capture_chromium.py`` into
``captured/``, not committed: the first run captures them when the folder is
empty, which needs a Chromium on the machine) and a minimal client
(request line + ``Host``; for the upgrade, the five headers RFC 6455 requires).

Bytes are counted as they cross each client socket, by kind (HTTP request
heads, response heads, bodies, WebSocket frame headers, pings and pongs, the
one-time upgrade). TCP/IP overhead is counted from the kernel's own segment
counters (``TCP_INFO`` ``tcpi_segs_in`` + ``tcpi_segs_out`` on each client
socket, after connect, before close — data segments and pure ACKs alike),
at 52 bytes a segment: IPv4 20 + TCP 20 + the 12-byte timestamp option Linux
sends by default. Link-layer framing (Ethernet 18 + preamble/gap 20) and TLS
are not counted.

The network is loopback, so the one-way delay is simulated in the client:
every write is made after sleeping ``delay`` (upstream), and every byte read
counts as received ``delay`` later (downstream); a polling client cannot send
its next request before it has "received" the previous answer. Latency =
that receive time − the server's publish time (both CLOCK_MONOTONIC).

The same comparison on the product, with the chat's own transports (``/ws``,
``/sse``, long and short ``/poll`` of a real ``rawws serve``), is
``python -m experiments.overhead.product`` (its section "On the product" of
OVERHEAD.md); what a session of each costs the server (idle memory, CPU per
delivery to 1,000 members) is ``python -m experiments.overhead.sessions``
(SESSIONS.md). The first reuses this study's counting, analysis and plots; the
second, perfkit's server processes and /proc readings.
"""
