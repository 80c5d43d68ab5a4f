"""Where a chat really runs (PERF.md): compressed connections, handshakes, reconnect storms, latency.

One module per scenario, each run alone: ``python -m experiments.perf.compression``,
``.auth_handshake``, ``.storm``, ``.latency`` (``--help`` for each), then
``python -m experiments.perf.plot`` for PERF.md's plots from their ``--json``.
"""
